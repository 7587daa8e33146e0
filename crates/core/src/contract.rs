//! The HTTP API's contract in types: the route table and the resources the API answers with.
//! The api function serialises these, the CLI deserialises them, and `openapi.yaml`, the
//! template's routes and the router are checked against [`Route::ALL`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::job::{JobId, JobStatus};
use crate::transform::{Format, TransformSpec};
use crate::usage::Totals;

/// One operation of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Health,
    CreateJob,
    GetJob,
    CreateUpload,
    GetUsage,
    ListPresets,
    PutPreset,
    GetPreset,
    DeletePreset,
}

impl Route {
    /// Every route, in the order `openapi.yaml` documents them.
    pub const ALL: [Route; 9] = [
        Route::Health,
        Route::CreateJob,
        Route::GetJob,
        Route::CreateUpload,
        Route::GetUsage,
        Route::ListPresets,
        Route::PutPreset,
        Route::GetPreset,
        Route::DeletePreset,
    ];

    pub fn method(self) -> &'static str {
        match self {
            Route::Health
            | Route::GetJob
            | Route::GetUsage
            | Route::ListPresets
            | Route::GetPreset => "GET",
            Route::CreateJob | Route::CreateUpload => "POST",
            Route::PutPreset => "PUT",
            Route::DeletePreset => "DELETE",
        }
    }

    /// The path template, with `{name}` parameters as in OpenAPI (and axum).
    pub fn path(self) -> &'static str {
        match self {
            Route::Health => "/v1/health",
            Route::CreateJob => "/v1/jobs",
            Route::GetJob => "/v1/jobs/{job_id}",
            Route::CreateUpload => "/v1/uploads",
            Route::GetUsage => "/v1/usage",
            Route::ListPresets => "/v1/presets",
            Route::PutPreset | Route::GetPreset | Route::DeletePreset => "/v1/presets/{name}",
        }
    }

    /// `HEAD` is answered like `GET` only where it is useful (health checks).
    pub fn allows_head(self) -> bool {
        self == Route::Health
    }

    /// `"GET /v1/jobs/{job_id}"`: the route's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Route::Health => "GET /v1/health",
            Route::CreateJob => "POST /v1/jobs",
            Route::GetJob => "GET /v1/jobs/{job_id}",
            Route::CreateUpload => "POST /v1/uploads",
            Route::GetUsage => "GET /v1/usage",
            Route::ListPresets => "GET /v1/presets",
            Route::PutPreset => "PUT /v1/presets/{name}",
            Route::GetPreset => "GET /v1/presets/{name}",
            Route::DeletePreset => "DELETE /v1/presets/{name}",
        }
    }

    /// Whether the caller must present an API key.
    pub fn needs_key(self) -> bool {
        self != Route::Health
    }

    /// The route serving `method` on a path template.
    pub fn find(method: &str, path: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| {
            r.path() == path && (r.method() == method || (method == "HEAD" && r.allows_head()))
        })
    }

    /// The methods a path template allows, as an `Allow` header lists them.
    pub fn allowed_on(path: &str) -> String {
        let mut methods: Vec<&str> = Vec::new();
        for r in Route::ALL.into_iter().filter(|r| r.path() == path) {
            methods.push(r.method());
            if r.allows_head() {
                methods.push("HEAD");
            }
        }
        methods.join(", ")
    }
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

/// A job, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResource {
    pub job_id: JobId,
    pub status: JobStatus,
    pub status_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub params: TransformSpec,
    pub input: InputResource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobErrorResource>,
}

impl JobResource {
    /// Where a job can be read: `/v1/jobs/<job_id>`.
    pub fn status_url(job_id: &JobId) -> String {
        format!("/v1/jobs/{job_id}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputResource {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// A done job's output, with a freshly signed URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultResource {
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// Why a failed job failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobErrorResource {
    pub code: String,
    pub message: String,
}

/// `POST /v1/uploads`: where to send a large image: a `multipart/form-data` POST to `url` of
/// every field of `fields`, then the image as the last part, named `file`. The storage refuses
/// an image over `max_bytes` or after `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResource {
    pub upload_id: String,
    pub url: String,
    /// Always `POST`.
    pub method: String,
    pub fields: std::collections::BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_bytes: u64,
}

/// `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageResource {
    pub granularity: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub items: Vec<UsageItem>,
    pub totals: Totals,
}

/// One period's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageItem {
    #[serde(flatten)]
    pub totals: Totals,
    /// The period without its granularity prefix: `2026-11-25T13`, `2026-11-25`, `2026-11`.
    pub period: String,
}

/// A preset (`PUT`/`GET /v1/presets/{name}`): its parameters as given, each value a string as in
/// a query string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresetResource {
    pub name: String,
    pub params: std::collections::BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<crate::preset::Preset> for PresetResource {
    fn from(p: crate::preset::Preset) -> Self {
        Self {
            name: p.name.into(),
            params: p.params,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `GET /v1/presets`: the caller's presets, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresetListResource {
    pub presets: Vec<PresetResource>,
}

/// Every error response: `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_unique_and_findable() {
        for r in Route::ALL {
            assert_eq!(Route::find(r.method(), r.path()), Some(r));
            assert_eq!(r.name(), format!("{} {}", r.method(), r.path()));
        }
        assert_eq!(Route::find("HEAD", "/v1/health"), Some(Route::Health));
        assert_eq!(Route::find("HEAD", "/v1/jobs/{job_id}"), None);
        assert_eq!(Route::find("DELETE", "/v1/jobs/{job_id}"), None);
        assert_eq!(Route::allowed_on("/v1/health"), "GET, HEAD");
        assert_eq!(Route::allowed_on("/v1/jobs"), "POST");
        assert_eq!(Route::allowed_on("/v1/presets/{name}"), "PUT, GET, DELETE");
        assert!(!Route::Health.needs_key() && Route::GetJob.needs_key());
    }

    #[test]
    fn a_usage_item_is_its_totals_then_its_period() {
        let item = UsageItem {
            totals: Totals {
                jobs: 2,
                ..Totals::default()
            },
            period: "2026-11-25".into(),
        };
        let text = serde_json::to_string(&item).unwrap();
        assert!(text.starts_with("{\"jobs\":2,"), "{text}");
        assert!(text.ends_with(",\"period\":\"2026-11-25\"}"), "{text}");
        assert_eq!(serde_json::from_str::<UsageItem>(&text).unwrap(), item);
    }
}
