//! Jobs: identity, the forward-only state machine, and the record the jobs table holds.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::transform::{Format, TransformSpec};

/// How long a job record lives after creation (the jobs table's TTL).
pub const JOB_TTL: time::Duration = time::Duration::days(7);

/// A job id: a UUIDv7 in its hyphenated lowercase form. Time-ordered, with 74 random bits, so it
/// cannot be guessed, and ownership is still checked on every read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// Accepts only the canonical form this service hands out. Anything else cannot name a job.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 36 {
            return None;
        }
        let u = uuid::Uuid::try_parse(s).ok()?;
        let canonical = u.hyphenated().to_string();
        (canonical == s).then_some(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        JobId::parse(&s).ok_or_else(|| format!("not a job id: {s:?}"))
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life. Status only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Processing,
    Done,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Processing,
        JobStatus::Done,
        JobStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }

    /// The states a job may be in for a move to `self` to be allowed. This is the whole state
    /// machine; the jobs table enforces it with a condition expression built from this list.
    ///
    /// - `processing` from `queued` (first claim) or `processing` (a redelivery after a crash or
    ///   timeout; the attempt count goes up);
    /// - `done` only from `processing`;
    /// - `failed` from `queued` (enqueue failed, or dead-lettered before any claim) or
    ///   `processing`.
    pub fn allowed_from(self) -> &'static [JobStatus] {
        match self {
            JobStatus::Queued => &[],
            JobStatus::Processing => &[JobStatus::Queued, JobStatus::Processing],
            JobStatus::Done => &[JobStatus::Processing],
            JobStatus::Failed => &[JobStatus::Queued, JobStatus::Processing],
        }
    }

    pub fn can_move_to(self, to: JobStatus) -> bool {
        to.allowed_from().contains(&self)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the input looked like, from its header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputMeta {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// What the job produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultMeta {
    /// The object key in the results bucket.
    pub key: String,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// Why a job failed, as shown to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// The jobs table's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: JobId,
    pub customer_id: String,
    pub status: JobStatus,
    pub params: TransformSpec,
    pub input: InputMeta,
    /// The staged input's key in the staging bucket.
    pub staging_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// How many times the resize function has claimed the job.
    #[serde(default)]
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Job {
    /// A new job, `queued`, created `now`.
    pub fn new(
        customer_id: String,
        params: TransformSpec,
        input: InputMeta,
        staging_key: String,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            job_id: JobId::generate(),
            customer_id,
            status: JobStatus::Queued,
            params,
            input,
            staging_key,
            result: None,
            error: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Epoch seconds at which the jobs table may delete the record.
    pub fn expires_at(&self) -> i64 {
        (self.created_at + JOB_TTL).unix_timestamp()
    }

    /// The results-bucket key of this job's output.
    pub fn result_key(&self, format: Format) -> String {
        format!(
            "results/{}/{}.{}",
            self.customer_id,
            self.job_id,
            format.extension()
        )
    }
}

/// The message on the jobs queue. Small on purpose: the job record holds everything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: JobId,
    pub customer_id: String,
    /// When the api enqueued it, in epoch milliseconds (queue wait is measured from here).
    pub enqueued_at_ms: i64,
}

/// Staging keys: inline bodies and presigned uploads live under the customer's own prefix, so an
/// upload id can only ever name the caller's own object.
pub fn staging_key_inline(customer_id: &str, job_id: &JobId) -> String {
    format!("inline/{customer_id}/{job_id}")
}

pub fn staging_key_upload(customer_id: &str, upload_id: &str) -> String {
    format!("uploads/{customer_id}/{upload_id}")
}

/// An upload id: a random UUIDv4, canonical form only.
pub fn parse_upload_id(s: &str) -> Option<String> {
    let u = uuid::Uuid::try_parse(s).ok()?;
    let canonical = u.hyphenated().to_string();
    (canonical == s).then_some(canonical)
}

pub fn generate_upload_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_and_reject_noise() {
        let id = JobId::generate();
        assert_eq!(JobId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(
            serde_json::from_value::<JobId>(serde_json::json!(id.as_str())).unwrap(),
            id
        );
        for bad in [
            "",
            "x",
            "../etc/passwd",
            &id.as_str().to_uppercase(),
            &id.as_str().replace('-', ""),
            &format!("{{{id}}}"),
        ] {
            assert_eq!(JobId::parse(bad), None, "{bad}");
        }
        assert!(JobId::generate() != JobId::generate());
    }

    #[test]
    fn state_machine_only_moves_forward() {
        use JobStatus::*;
        let allowed = [
            (Queued, Processing),
            (Processing, Processing),
            (Processing, Done),
            (Processing, Failed),
            (Queued, Failed),
        ];
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        assert!(Done.is_terminal() && Failed.is_terminal());
        assert!(!Queued.is_terminal() && !Processing.is_terminal());
        assert_eq!(JobStatus::parse("done"), Some(Done));
        assert_eq!(JobStatus::parse("DONE"), None);
    }

    #[test]
    fn job_serialises_with_rfc3339_times() {
        let now = OffsetDateTime::from_unix_timestamp(1_764_000_000).unwrap();
        let spec = TransformSpec::with_width(400).unwrap();
        let input = InputMeta {
            format: Format::Jpeg,
            width: 1600,
            height: 1200,
            bytes: 250_000,
        };
        let job = Job::new("cus_a".into(), spec, input, "inline/cus_a/x".into(), now);
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["status"], "queued");
        assert_eq!(v["created_at"], "2025-11-24T16:00:00Z");
        assert_eq!(v["params"]["width"], 400);
        let back: Job = serde_json::from_value(v).unwrap();
        assert_eq!(back, job);
        assert_eq!(job.expires_at(), 1_764_000_000 + 7 * 86_400);
        assert_eq!(
            job.result_key(Format::Jpeg),
            format!("results/cus_a/{}.jpg", job.job_id)
        );
    }

    #[test]
    fn upload_ids() {
        let id = generate_upload_id();
        assert_eq!(parse_upload_id(&id), Some(id.clone()));
        assert_eq!(parse_upload_id("../../x"), None);
        assert_eq!(
            staging_key_upload("cus_a", &id),
            format!("uploads/cus_a/{id}")
        );
    }
}
