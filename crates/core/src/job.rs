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

/// A UUIDv8 (RFC 9562's custom layout) from the SHA-256 of `parts`: the same parts, the same id.
fn derived_uuid(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so that no two different part lists hash alike.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A caller's `Idempotency-Key`: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The sweeper reads the unfinished jobs in this many segments (of a parallel Scan of the jobs
/// table's open-by-customer index; the in-memory store splits them by [`JobId::open_shard`]), so
/// that one failed or throttled read delays only a sixteenth of them.
pub const OPEN_JOB_SHARDS: u32 = 16;

impl JobId {
    /// The segment of the open jobs this job is read in by the in-memory store.
    pub fn open_shard(&self) -> u32 {
        // The last hex digits are random (v7) or a hash (idempotency keys).
        let tail = &self.0[self.0.len().saturating_sub(4)..];
        u32::from_str_radix(tail, 16).unwrap_or(0) % OPEN_JOB_SHARDS
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// The id of a customer's job submitted with `key`: every retry of that request names the
    /// same job, so it can only be created once.
    pub fn for_idempotency_key(customer_id: &str, key: &IdempotencyKey) -> Self {
        Self(derived_uuid(&[
            b"job",
            customer_id.as_bytes(),
            key.0.as_bytes(),
        ]))
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
    /// Where the input waits in the staging bucket.
    pub staging_key: StagingKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// How many times the resize function has claimed the job.
    #[serde(default)]
    pub attempts: u32,
    /// Claims that found the previous attempt neither finished nor released: the function died
    /// (crashed, timed out, was killed) while working on this job. A job that keeps doing that
    /// is at fault, not the service.
    #[serde(default)]
    pub crashes: u32,
    /// What the submission that created the job asked for (the transform and the image), hashed:
    /// a retry with the same `Idempotency-Key` must ask for the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
    /// Whether the current attempt gave the job back after a transient failure (a dependency
    /// down or throttling), so that the next claim does not count a crash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
    /// Whether the input travels in the job's message ([`JobMessage::image`]) rather than in
    /// staging: nothing to read from S3, nothing to remove there. Such a job is written only after
    /// its message was sent, so a job record always has a message that can process it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub carried: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Where a new job's input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The request body, staged for this job alone under its own key.
    Inline,
    /// An object uploaded with a presigned URL; it can feed several jobs.
    Upload(UploadId),
}

impl Job {
    /// A new job, `queued`, created `now`.
    pub fn new(
        customer_id: String,
        params: TransformSpec,
        input: InputMeta,
        source: Source,
        now: OffsetDateTime,
    ) -> Self {
        Self::new_with_id(JobId::generate(), customer_id, params, input, source, now)
    }

    /// A new job with a given id (one derived from an idempotency key).
    pub fn new_with_id(
        job_id: JobId,
        customer_id: String,
        params: TransformSpec,
        input: InputMeta,
        source: Source,
        now: OffsetDateTime,
    ) -> Self {
        let staging_key = match source {
            Source::Inline => StagingKey::Inline {
                customer_id: customer_id.clone(),
                job_id: job_id.clone(),
            },
            Source::Upload(upload_id) => StagingKey::Upload {
                customer_id: customer_id.clone(),
                upload_id,
            },
        };
        Self {
            job_id,
            customer_id,
            status: JobStatus::Queued,
            params,
            input,
            staging_key,
            result: None,
            error: None,
            attempts: 0,
            crashes: 0,
            request_hash: None,
            released: false,
            carried: false,
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

    /// The job finished with `result`. Only a `processing` job can complete; the jobs table's
    /// conditional write enforces it against concurrent deliveries.
    pub fn complete(&mut self, result: ResultMeta, now: OffsetDateTime) {
        debug_assert!(
            self.status.can_move_to(JobStatus::Done),
            "{} -> done",
            self.status
        );
        self.status = JobStatus::Done;
        self.result = Some(result);
        self.updated_at = now;
    }

    /// The job failed with `error`. A `queued` or `processing` job can fail.
    pub fn fail(&mut self, error: JobError, now: OffsetDateTime) {
        debug_assert!(
            self.status.can_move_to(JobStatus::Failed),
            "{} -> failed",
            self.status
        );
        self.status = JobStatus::Failed;
        self.error = Some(error);
        self.updated_at = now;
    }
}

impl JobError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The message on the jobs queue. The job record holds everything else, except, for a small
/// inline image, the image itself: it travels in the message (base64 in the JSON body) instead of
/// being staged in S3, which saves a PUT, a HEAD, a GET and a DELETE per job and two S3 round
/// trips on the latency path (docs/capacity.md: the break-even size).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: JobId,
    pub customer_id: String,
    /// When the api enqueued it, in epoch milliseconds (queue wait is measured from here).
    pub enqueued_at_ms: i64,
    /// How many times the dead-letter path has sent the job back to the jobs queue.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redrives: u32,
    /// The image of a job whose input travels in its message ([`Job::carried`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub image: Option<Vec<u8>>,
    /// With an image: the request hash of the submission it came from, which the job it names
    /// must hold (two requests with one idempotency key and two images each send a message before
    /// one of them writes the job; only that one's message may process it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
}

/// Never the image's bytes in a log: only their length.
impl std::fmt::Debug for JobMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobMessage")
            .field("job_id", &self.job_id)
            .field("customer_id", &self.customer_id)
            .field("enqueued_at_ms", &self.enqueued_at_ms)
            .field("redrives", &self.redrives)
            .field("image_bytes", &self.image.as_ref().map(Vec::len))
            .field("request_hash", &self.request_hash)
            .finish()
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(t) => STANDARD
                .decode(t.as_bytes())
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A staged input's key in the staging bucket. Inline bodies and presigned uploads live under the
/// customer's own prefix, so an upload id can only ever name the caller's own object.
///
/// Stored and written as `inline/<customer_id>/<job_id>` or `uploads/<customer_id>/<upload_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StagingKey {
    /// One job's request body; deleted when the job is finished.
    Inline { customer_id: String, job_id: JobId },
    /// A presigned upload; kept until the staging bucket's lifecycle rule expires it, so that
    /// one upload can feed several jobs.
    Upload {
        customer_id: String,
        upload_id: UploadId,
    },
}

impl StagingKey {
    const INLINE: &str = "inline/";
    const UPLOADS: &str = "uploads/";

    pub fn upload(customer_id: &str, upload_id: &UploadId) -> Self {
        StagingKey::Upload {
            customer_id: customer_id.to_owned(),
            upload_id: upload_id.clone(),
        }
    }

    pub fn is_inline(&self) -> bool {
        matches!(self, StagingKey::Inline { .. })
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (kind, rest) = if let Some(rest) = s.strip_prefix(Self::INLINE) {
            (true, rest)
        } else {
            (false, s.strip_prefix(Self::UPLOADS)?)
        };
        let (customer_id, id) = rest.split_once('/')?;
        if !crate::key::is_customer_id(customer_id) {
            return None;
        }
        let customer_id = customer_id.to_owned();
        Some(if kind {
            StagingKey::Inline {
                customer_id,
                job_id: JobId::parse(id)?,
            }
        } else {
            StagingKey::Upload {
                customer_id,
                upload_id: UploadId::parse(id)?,
            }
        })
    }
}

impl fmt::Display for StagingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StagingKey::Inline {
                customer_id,
                job_id,
            } => write!(f, "{}{customer_id}/{job_id}", Self::INLINE),
            StagingKey::Upload {
                customer_id,
                upload_id,
            } => write!(f, "{}{customer_id}/{upload_id}", Self::UPLOADS),
        }
    }
}

impl TryFrom<String> for StagingKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        StagingKey::parse(&s).ok_or_else(|| format!("not a staging key: {s:?}"))
    }
}

impl From<StagingKey> for String {
    fn from(k: StagingKey) -> String {
        k.to_string()
    }
}

/// An upload id: a random UUIDv4, canonical form only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

impl UploadId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// The upload of a customer's `POST /v1/uploads` made with `key`: a retry gets the same one.
    pub fn for_idempotency_key(customer_id: &str, key: &IdempotencyKey) -> Self {
        Self(derived_uuid(&[
            b"upload",
            customer_id.as_bytes(),
            key.0.as_bytes(),
        ]))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let u = uuid::Uuid::try_parse(s).ok()?;
        let canonical = u.hyphenated().to_string();
        (canonical == s).then_some(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UploadId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        UploadId::parse(&s).ok_or_else(|| format!("not an upload id: {s:?}"))
    }
}

impl From<UploadId> for String {
    fn from(id: UploadId) -> String {
        id.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_carries_its_image_as_base64_and_never_logs_it() {
        let msg = JobMessage {
            job_id: JobId::generate(),
            customer_id: "cus_1".into(),
            enqueued_at_ms: 1,
            redrives: 0,
            image: Some(vec![0xff, 0xd8, 0xff, 0x00, 0x01]),
            request_hash: Some("ab".into()),
        };
        let body = serde_json::to_string(&msg).unwrap();
        assert!(body.contains(r#""image":"/9j/AAE=""#), "{body}");
        assert_eq!(serde_json::from_str::<JobMessage>(&body).unwrap(), msg);
        assert!(format!("{msg:?}").contains("image_bytes: Some(5)"));
        assert!(!format!("{msg:?}").contains("255"));
        // Without an image, the message is what it always was (older messages still parse).
        let plain = JobMessage {
            image: None,
            request_hash: None,
            ..msg
        };
        let body = serde_json::to_string(&plain).unwrap();
        assert!(
            !body.contains("image") && !body.contains("request_hash"),
            "{body}"
        );
        assert_eq!(serde_json::from_str::<JobMessage>(&body).unwrap(), plain);
        // The default limit's message fits 8 SQS units of 64 KiB (the break-even): base64 of
        // the image and at most 400 bytes of JSON around it (ids, a timestamp, the hash, names).
        let units = |n: usize| {
            let m = JobMessage {
                image: Some(vec![0xff; n]),
                request_hash: Some("f".repeat(64)),
                ..plain.clone()
            };
            let len = serde_json::to_string(&m).unwrap().len();
            assert!(len <= n.div_ceil(3) * 4 + 400, "{len}");
            len.div_ceil(65_536)
        };
        assert_eq!(units(384_000), 8);
        assert_eq!(units(400_000), 9);
    }

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
        let job = Job::new("cus_a".into(), spec, input, Source::Inline, now);
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["status"], "queued");
        assert_eq!(v["created_at"], "2025-11-24T16:00:00Z");
        assert_eq!(v["params"]["width"], 400);
        assert_eq!(v["staging_key"], format!("inline/cus_a/{}", job.job_id));
        let back: Job = serde_json::from_value(v).unwrap();
        assert_eq!(back, job);
        assert_eq!(job.expires_at(), 1_764_000_000 + 7 * 86_400);
        assert_eq!(
            job.result_key(Format::Jpeg),
            format!("results/cus_a/{}.jpg", job.job_id)
        );
    }

    #[test]
    fn idempotency_keys_name_one_job_per_customer() {
        let k = IdempotencyKey::parse("order-42/thumb").unwrap();
        let a = JobId::for_idempotency_key("cus_a", &k);
        assert_eq!(a, JobId::for_idempotency_key("cus_a", &k));
        assert_ne!(a, JobId::for_idempotency_key("cus_b", &k));
        assert_ne!(
            a,
            JobId::for_idempotency_key("cus_a", &IdempotencyKey::parse("order-43/thumb").unwrap())
        );
        assert_eq!(
            JobId::parse(a.as_str()),
            Some(a.clone()),
            "a canonical job id"
        );
        assert_ne!(
            a.as_str(),
            UploadId::for_idempotency_key("cus_a", &k).as_str(),
            "jobs and uploads do not share ids"
        );
        for bad in ["", "tab\there", "é", &"x".repeat(256)] {
            assert_eq!(IdempotencyKey::parse(bad), None, "{bad:?}");
        }
        assert!(IdempotencyKey::parse(&"x".repeat(255)).is_some());
    }

    #[test]
    fn upload_ids() {
        let id = UploadId::generate();
        assert_eq!(UploadId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(UploadId::parse("../../x"), None);
        assert_eq!(
            StagingKey::upload("cus_a", &id).to_string(),
            format!("uploads/cus_a/{id}")
        );
    }

    #[test]
    fn staging_keys_round_trip_and_reject_noise() {
        let job = JobId::generate();
        let upload = UploadId::generate();
        let inline = StagingKey::Inline {
            customer_id: "cus_a".into(),
            job_id: job.clone(),
        };
        let up = StagingKey::upload("cus_a", &upload);
        for k in [&inline, &up] {
            assert_eq!(StagingKey::parse(&k.to_string()).as_ref(), Some(k));
        }
        assert!(inline.is_inline() && !up.is_inline());
        assert_eq!(inline.to_string(), format!("inline/cus_a/{job}"));
        for bad in [
            String::new(),
            format!("other/cus_a/{job}"),
            format!("inline/cus_a/{upload}x"),
            format!("uploads/../{upload}"),
            format!("inline/cus_a/{job}/x"),
        ] {
            assert_eq!(StagingKey::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn transitions_set_what_the_state_needs() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_764_000_000).unwrap();
        let t1 = t0 + time::Duration::seconds(3);
        let input = InputMeta {
            format: Format::Png,
            width: 10,
            height: 10,
            bytes: 100,
        };
        let spec = TransformSpec::with_width(5).unwrap();
        let mut job = Job::new("cus_a".into(), spec, input, Source::Inline, t0);
        job.status = JobStatus::Processing;
        let mut failed = job.clone();
        let result = ResultMeta {
            key: job.result_key(Format::Png),
            format: Format::Png,
            width: 5,
            height: 5,
            bytes: 40,
        };
        job.complete(result.clone(), t1);
        assert_eq!(
            (job.status, job.result.as_ref(), job.updated_at),
            (JobStatus::Done, Some(&result), t1)
        );
        failed.fail(JobError::new("invalid_image", "bad"), t1);
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error, Some(JobError::new("invalid_image", "bad")));
        assert_eq!(failed.result, None);
    }
}
