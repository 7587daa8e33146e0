//! The request-path use cases: submit a job (inline or from an upload), wait for it, read it,
//! create an upload, report usage.

use std::time::Duration;

use resizer_core::image::{self, ImageError, ImageInfo, truncation};
use resizer_core::job::{
    IdempotencyKey, InputMeta, Job, JobId, JobMessage, Source, StagingKey, UploadId,
};
use resizer_core::transform::{Format, TransformSpec};
use resizer_core::usage::{Period, Totals, UsageRange};
use time::OffsetDateTime;

use crate::ports::Presigned;
use crate::{App, AppError, Principal, Settings, StoreError};

/// Longest `wait`, in seconds (API Gateway's integration timeout is 30 s).
pub const MAX_WAIT_SECONDS: u64 = 20;
/// A waiting caller's first read of its job: no job ends sooner than its message's trip through
/// SQS, its claim, its conversion and its finish (docs/capacity.md's latency budget).
const WAIT_FIRST_POLL: Duration = Duration::from_millis(100);
/// Then a read every 50 ms while most jobs finish (their whole path is a few hundred ms), so the
/// answer comes at most 50 ms after the job ends; each read is 1 RRU ($0.125 per million).
const WAIT_FAST_POLL: Duration = Duration::from_millis(50);
const WAIT_FAST_PHASE: Duration = Duration::from_secs(1);
/// After the first second, a slow job (a large image, a backlog) is read every 250 ms.
const WAIT_SLOW_POLL: Duration = Duration::from_millis(250);

/// How long a waiting caller sleeps before its next read, `elapsed` into its wait.
pub fn wait_poll_delay(elapsed: Duration) -> Duration {
    if elapsed < WAIT_FIRST_POLL {
        WAIT_FIRST_POLL - elapsed
    } else if elapsed < WAIT_FAST_PHASE {
        WAIT_FAST_POLL
    } else {
        WAIT_SLOW_POLL
    }
}

/// How much of a large upload is read to sniff its type and dimensions.
const PROBE_PREFIX_BYTES: u64 = 256 * 1024;
/// The longest prefix read for an upload's header.
pub const MAX_PROBE_BYTES: u64 = 16 * 1024 * 1024;

const SUPPORTED_TYPES: &str = "image/jpeg, image/png, image/webp or image/gif";

/// Where a submitted job's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The request body.
    Inline(Vec<u8>),
    /// An `upload_id` from [`App::create_upload`], as the caller sent it.
    Upload(String),
}

/// A job as submitted: the transform and the image, and the caller's idempotency key if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub spec: TransformSpec,
    pub input: Input,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// A created job, or the one an earlier request with the same idempotency key created.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub job: Job,
    /// Whether this is a retry answered with the earlier request's job.
    pub replayed: bool,
}

impl Submission {
    /// An image sent in the request body with `content_type` (lowercase, without parameters).
    /// Refuses what is not an image type, an empty body and a body over the inline limit.
    pub fn inline(
        spec: TransformSpec,
        content_type: Option<&str>,
        body: &[u8],
        settings: &Settings,
    ) -> Result<Self, AppError> {
        let declared = content_type.and_then(Format::from_mime);
        if !declared.is_some_and(Format::is_input) {
            return Err(AppError::UnsupportedMediaType(format!(
                "Content-Type must be {SUPPORTED_TYPES} (or application/json with an upload_id), \
                 got {}",
                content_type.map_or("none".to_string(), |c| format!("{c:?}"))
            )));
        }
        let len = body.len() as u64;
        if len > settings.max_inline_bytes {
            return Err(AppError::PayloadTooLarge(format!(
                "the body is {len} bytes, over the inline limit of {} bytes; upload larger images \
                 with POST /v1/uploads (up to {} bytes)",
                settings.max_inline_bytes, settings.max_upload_bytes
            )));
        }
        if body.is_empty() {
            return Err(AppError::Invalid(
                "the request body is empty; send the image bytes".into(),
            ));
        }
        Ok(Self {
            spec,
            input: Input::Inline(body.to_vec()),
            idempotency_key: None,
        })
    }

    /// An image uploaded earlier, named by its `upload_id`.
    pub fn upload(spec: TransformSpec, upload_id: String) -> Self {
        Self {
            spec,
            input: Input::Upload(upload_id),
            idempotency_key: None,
        }
    }

    pub fn with_idempotency_key(mut self, key: Option<IdempotencyKey>) -> Self {
        self.idempotency_key = key;
        self
    }

    /// What the submission asks for, hashed: the transform and the image (its bytes, or the
    /// upload it names).
    pub fn request_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.spec).expect("a spec always serialises"));
        match &self.input {
            Input::Inline(body) => {
                h.update(b"\0inline\0");
                h.update(Sha256::digest(body));
            }
            Input::Upload(id) => {
                h.update(b"\0upload\0");
                h.update(id.as_bytes());
            }
        }
        hex::encode(h.finalize())
    }
}

/// A presigned upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub upload_id: UploadId,
    /// Where to POST the image: a `multipart/form-data` form of `fields`, then the file.
    pub url: String,
    pub fields: Vec<(String, String)>,
    pub expires_at: OffsetDateTime,
    pub max_bytes: u64,
}

impl App {
    /// Creates a job: checks the quota, stages the image (probing its header and, when inline,
    /// its completeness; a small inline image is not staged but travels in the job's message, see
    /// [`App::submit_carried`]), counts the job against the quota (a conditional write that does not
    /// depend on the usage aggregation), writes the job `queued` and enqueues it. When the
    /// enqueue fails, the job and its staged body are removed again and the quota given back, so
    /// that nothing lingers for a job the caller was told failed; if the job cannot be removed,
    /// it is answered as created (the sweeper enqueues it), never as an error the caller would
    /// retry.
    ///
    /// With an idempotency key the job's id is derived from it: a retry of the same request is
    /// answered with the job the first one created (whatever happened to that one's answer), and
    /// the key reused for another request is refused.
    pub async fn submit(
        &self,
        principal: &Principal,
        sub: Submission,
    ) -> Result<Submitted, AppError> {
        let hash = sub.request_hash();
        let keyed = sub
            .idempotency_key
            .as_ref()
            .map(|k| JobId::for_idempotency_key(&principal.customer_id, k));
        if let Some(id) = &keyed
            && let Some(earlier) = self.stores.jobs.get(id).await?
        {
            return replay(earlier, &hash);
        }
        if principal.over_quota() {
            return Err(principal.quota_exceeded());
        }
        // After the replay check: a retry of a created job is answered, never rate limited.
        self.admit(principal).await?;
        self.check_open_jobs(principal).await?;
        let id = keyed.clone().unwrap_or_else(JobId::generate);
        let (mut job, carried) = match sub.input {
            Input::Inline(body) => self.stage_inline(principal, id, sub.spec, body).await?,
            Input::Upload(upload) => (
                self.stage_upload(principal, id, sub.spec, &upload).await?,
                None,
            ),
        };
        let reservation = match self.reserve_quota(principal).await {
            Ok(r) => r,
            Err(e) => {
                self.discard_staged(&job).await;
                return Err(e);
            }
        };
        job.request_hash = Some(hash.clone());
        if let Some(image) = carried {
            return self
                .submit_carried(principal, job, image, reservation, keyed.is_some(), &hash)
                .await;
        }
        if let Err(e) = self.stores.jobs.put_new(&job).await {
            self.release_quota(principal, reservation).await;
            return self
                .created_meanwhile(&job, e, keyed.is_some(), &hash)
                .await;
        }
        let msg = self.message_of(&job);
        if let Err(e) = self.stores.queue.send(&msg).await {
            // The caller gets an error and no job id, so the job must not linger as `queued`.
            if let Err(d) = self.stores.jobs.delete_queued(&job.job_id).await {
                // It lingers: then it is a job, and the sweeper enqueues it. Answering an error
                // now would have the caller submit (and pay for) it twice.
                tracing::warn!(job_id = %job.job_id, send_error = %e, delete_error = %d, "could not enqueue or remove a new job; the sweeper will enqueue it");
                return Ok(Submitted {
                    job,
                    replayed: false,
                });
            }
            if job.staging_key.is_inline()
                && let Err(d) = self
                    .stores
                    .staging
                    .delete(&job.staging_key.to_string())
                    .await
            {
                tracing::warn!(job_id = %job.job_id, error = %d, "could not remove an unqueued job's staged body; the lifecycle rule will");
            }
            self.release_quota(principal, reservation).await;
            return Err(e.into());
        }
        Ok(Submitted {
            job,
            replayed: false,
        })
    }

    /// A job whose image travels in its message: the message is sent first and the job written
    /// after, so that a job record always has a message able to process it (the sweeper could
    /// not send the image again). A message whose record never comes (its write failed, or the
    /// api died before it) is dropped by the resize function after [`crate::ORPHAN_GRACE`]; one
    /// whose image is not the job's (two requests with one idempotency key and two images) is
    /// dropped at once.
    async fn submit_carried(
        &self,
        principal: &Principal,
        job: Job,
        image: Vec<u8>,
        reservation: Option<crate::quota::Reservation>,
        keyed: bool,
        hash: &str,
    ) -> Result<Submitted, AppError> {
        let msg = JobMessage {
            image: Some(image),
            request_hash: Some(hash.to_owned()),
            ..self.message_of(&job)
        };
        if let Err(e) = self.stores.queue.send(&msg).await {
            self.release_quota(principal, reservation).await;
            return Err(e.into());
        }
        if let Err(e) = self.stores.jobs.put_new(&job).await {
            self.release_quota(principal, reservation).await;
            return self.created_meanwhile(&job, e, keyed, hash).await;
        }
        Ok(Submitted {
            job,
            replayed: false,
        })
    }

    /// The answer when writing a new job failed with `e`: with an idempotency key, a conflict is
    /// the same key at the same time, and the other request created the job (and counted it).
    async fn created_meanwhile(
        &self,
        job: &Job,
        e: StoreError,
        keyed: bool,
        hash: &str,
    ) -> Result<Submitted, AppError> {
        match e {
            StoreError::Conflict { .. } if keyed => {
                let earlier = self.stores.jobs.get(&job.job_id).await?;
                replay(
                    earlier.ok_or(StoreError::Conflict { op: "jobs.put_new" })?,
                    hash,
                )
            }
            e => Err(e.into()),
        }
    }

    /// Removes the inline body of a job refused by its quota (uploads stay for reuse).
    async fn discard_staged(&self, job: &Job) {
        if job.staging_key.is_inline()
            && !job.carried
            && let Err(d) = self
                .stores
                .staging
                .delete(&job.staging_key.to_string())
                .await
        {
            tracing::warn!(job_id = %job.job_id, error = %d, "could not remove an unqueued job's staged body; the lifecycle rule will");
        }
    }

    async fn stage_inline(
        &self,
        principal: &Principal,
        id: JobId,
        spec: TransformSpec,
        body: Vec<u8>,
    ) -> Result<(Job, Option<Vec<u8>>), AppError> {
        let info = image::probe(&body, &self.settings.limits)?;
        self.settings.limits.check_output_of(&info, &spec)?;
        if let Some(why) = truncation(info.format, &body) {
            return Err(AppError::Truncated(format!(
                "the {} image is truncated: {why}",
                info.format
            )));
        }
        let input = input_meta(info, body.len() as u64);
        let mut job = Job::new_with_id(
            id,
            principal.customer_id.clone(),
            spec,
            input,
            Source::Inline,
            self.now(),
        );
        if body.len() as u64 <= self.settings.message_image_max_bytes {
            job.carried = true;
            return Ok((job, Some(body)));
        }
        self.stores
            .staging
            .put(&job.staging_key.to_string(), body, info.format.mime())
            .await?;
        Ok((job, None))
    }

    async fn stage_upload(
        &self,
        principal: &Principal,
        id: JobId,
        spec: TransformSpec,
        upload_id: &str,
    ) -> Result<Job, AppError> {
        let upload_id = UploadId::parse(upload_id).ok_or_else(|| {
            AppError::Invalid("upload_id is not an upload id issued by POST /v1/uploads".into())
        })?;
        let key = StagingKey::upload(&principal.customer_id, &upload_id).to_string();
        let head = self.stores.staging.head(&key).await.map_err(|e| {
            if e.is_not_found() {
                AppError::Invalid(
                    "upload_id names no uploaded image: POST the image with the fields from POST \
                     /v1/uploads first (uploads expire after 24 hours)"
                        .into(),
                )
            } else {
                e.into()
            }
        })?;
        if head.size > self.settings.max_upload_bytes {
            return Err(AppError::PayloadTooLarge(format!(
                "the upload is {} bytes, over the limit of {} bytes",
                head.size, self.settings.max_upload_bytes
            )));
        }
        if head.size == 0 {
            return Err(AppError::Invalid("the uploaded object is empty".into()));
        }
        let info = self.probe_upload(&key, head.size).await?;
        self.settings.limits.check_output_of(&info, &spec)?;
        Ok(Job::new_with_id(
            id,
            principal.customer_id.clone(),
            spec,
            input_meta(info, head.size),
            Source::Upload(upload_id),
            self.now(),
        ))
    }

    /// Reads an upload's header from a prefix of it: 256 KiB first, and if the header lies
    /// beyond that (a JPEG behind hundreds of KiB of XMP or EXIF), longer prefixes up to
    /// [`MAX_PROBE_BYTES`], so that a file accepted inline is accepted uploaded too.
    async fn probe_upload(&self, key: &str, size: u64) -> Result<ImageInfo, AppError> {
        let mut n = PROBE_PREFIX_BYTES;
        loop {
            let prefix = self.stores.staging.get_prefix(key, n).await?;
            match image::probe(&prefix, &self.settings.limits) {
                Err(ImageError::InvalidImage(_)) if n < size && n < MAX_PROBE_BYTES => {
                    n = (n * 8).min(MAX_PROBE_BYTES);
                }
                r => return Ok(r?),
            }
        }
    }

    /// Polls until the job is finished or `wait` has passed, and answers its latest known state.
    /// The job exists: a failed read ends the wait with what is known, never with an error the
    /// caller would retry (and so submit again). Reads follow [`wait_poll_delay`].
    pub async fn wait_for(&self, job: Job, wait: Duration) -> Job {
        let started = tokio::time::Instant::now();
        let deadline = started + wait;
        let mut latest = job;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return latest;
            }
            let delay = wait_poll_delay(now - started);
            tokio::time::sleep(delay.min(deadline - now)).await;
            match self.stores.jobs.get(&latest.job_id).await {
                Ok(Some(j)) => latest = j,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job_id = %latest.job_id, error = %e, "could not read the job while waiting; answering what is known");
                    return latest;
                }
            }
            if latest.status.is_terminal() {
                return latest;
            }
        }
    }

    /// The caller's own job. Another customer's job is `NotFound`, like one that does not exist.
    pub async fn job(&self, principal: &Principal, id: &str) -> Result<Job, AppError> {
        let id = JobId::parse(id).ok_or(AppError::NotFound)?;
        self.stores
            .jobs
            .get(&id)
            .await?
            .filter(|j| j.customer_id == principal.customer_id)
            .ok_or(AppError::NotFound)
    }

    /// A freshly signed URL of a done job's result (valid for the result URL lifetime).
    pub async fn result_url(&self, job: &Job) -> Result<Option<Presigned>, AppError> {
        match (&job.status, &job.result) {
            (resizer_core::job::JobStatus::Done, Some(r)) => Ok(Some(
                self.stores
                    .results
                    .presign_get(&r.key, self.settings.result_url_ttl)
                    .await?,
            )),
            _ => Ok(None),
        }
    }

    /// A presigned POST upload into staging, for an image over the inline limit, bounded by
    /// `max_upload_bytes`. With an idempotency key, a retry gets the same upload (signed afresh).
    pub async fn create_upload(
        &self,
        principal: &Principal,
        key: Option<&IdempotencyKey>,
    ) -> Result<Upload, AppError> {
        if principal.over_quota() {
            return Err(principal.quota_exceeded());
        }
        let upload_id = match key {
            Some(k) => UploadId::for_idempotency_key(&principal.customer_id, k),
            None => UploadId::generate(),
        };
        let key = StagingKey::upload(&principal.customer_id, &upload_id).to_string();
        let signed = self
            .stores
            .staging
            .presign_post(
                &key,
                self.settings.upload_url_ttl,
                self.settings.max_upload_bytes,
            )
            .await?;
        Ok(Upload {
            upload_id,
            url: signed.url,
            fields: signed.fields,
            expires_at: signed.expires_at,
            max_bytes: self.settings.max_upload_bytes,
        })
    }

    /// The caller's rollups over `range`, in order.
    pub async fn usage(
        &self,
        principal: &Principal,
        range: &UsageRange,
    ) -> Result<Vec<(Period, Totals)>, AppError> {
        let (from, to) = range.sort_key_bounds();
        Ok(self
            .stores
            .rollups
            .between(&principal.customer_id, from, to)
            .await?)
    }
}

impl App {
    /// A job's message on the jobs queue, enqueued now (by the api, or again by the sweeper).
    pub(crate) fn message_of(&self, job: &Job) -> JobMessage {
        JobMessage {
            job_id: job.job_id.clone(),
            customer_id: job.customer_id.clone(),
            enqueued_at_ms: epoch_ms(self.now()),
            redrives: 0,
            image: None,
            request_hash: None,
        }
    }
}

/// The answer to a retry: the earlier request's job, if it asked for the same.
fn replay(earlier: Job, hash: &str) -> Result<Submitted, AppError> {
    if earlier.request_hash.as_deref() == Some(hash) {
        Ok(Submitted {
            job: earlier,
            replayed: true,
        })
    } else {
        Err(AppError::IdempotencyConflict(
            "this Idempotency-Key was used for another request (another image or transform); \
             use a new key for a new request"
                .into(),
        ))
    }
}

fn input_meta(info: ImageInfo, bytes: u64) -> InputMeta {
    InputMeta {
        format: info.format,
        width: info.width,
        height: info.height,
        bytes,
    }
}

pub(crate) fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
