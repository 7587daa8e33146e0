//! The S3 adapter: one bucket (staging, results or the usage archive), and presigned URLs into it.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{ProvideCredentials as _, SharedCredentialsProvider};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use resizer_app::ports::{ObjectHead, ObjectStore, Presigned, PresignedPost};
use time::OffsetDateTime;

use crate::error::{StoreError, classify};
use crate::post_policy;

/// S3's advice for latency-sensitive applications: a request under 512 KB, whose median latency
/// is tens of milliseconds, that has not answered after 2 seconds is retried (on a new
/// connection), rather than waited for. A result image is almost always that small, and its PUT
/// is on the path to the caller's result URL (docs/capacity.md, latency budget). Only buckets on
/// that path ([`S3Bucket::on_request_path`]: staging and results) retry so soon; the usage
/// archive's PUTs, which nobody waits for, get every call's 10 s, so that a slow store fails
/// them less often, not sooner.
pub const SMALL_OBJECT_BYTES: usize = 512 * 1024;
pub const SMALL_OBJECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// One bucket.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// What presigned POST uploads are signed with (the client's own are not readable back).
    credentials: Option<SharedCredentialsProvider>,
    /// Whether a small PUT is retried after [`SMALL_OBJECT_ATTEMPT_TIMEOUT`].
    on_request_path: bool,
}

impl S3Bucket {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            credentials: None,
            on_request_path: false,
        }
    }

    /// A bucket whose PUTs someone waits for (a caller's job, its result URL): a small PUT that
    /// has not answered after [`SMALL_OBJECT_ATTEMPT_TIMEOUT`] is retried.
    pub fn on_request_path(mut self) -> Self {
        self.on_request_path = true;
        self
    }

    /// Signs presigned POST uploads with `credentials` (the SDK configuration's provider).
    pub fn with_credentials(mut self, credentials: Option<SharedCredentialsProvider>) -> Self {
        self.credentials = credentials;
        self
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.bucket
    }

    /// The bucket's own URL, where a POST upload goes, as the SDK addresses it (its endpoint,
    /// virtual-hosted or path-style): a presigned GET of `key` without its key and query.
    async fn bucket_url(&self, key: &str, now: OffsetDateTime) -> Result<String, StoreError> {
        const OP: &str = "s3:presign POST";
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(Duration::from_secs(60), now)?)
            .await
            .map_err(|e| StoreError::other(OP, e.to_string()))?;
        let uri = req.uri();
        let path = uri.split('?').next().unwrap_or(uri);
        path.strip_suffix(key)
            .filter(|base| base.ends_with('/'))
            .map(str::to_owned)
            .ok_or_else(|| StoreError::other(OP, format!("cannot find the bucket in {path}")))
    }
}

#[async_trait]
impl ObjectStore for S3Bucket {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        let attempt = if self.on_request_path && body.len() < SMALL_OBJECT_BYTES {
            SMALL_OBJECT_ATTEMPT_TIMEOUT
        } else {
            crate::sdk::ATTEMPT_TIMEOUT
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default()
                    .timeout_config(crate::sdk::timeouts(attempt)),
            )
            .send()
            .await
            .map_err(|e| classify("s3:PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("s3:GetObject", e))?;
        let len = out.content_length().unwrap_or(0).max(0) as u64;
        if len > max_bytes {
            return Err(StoreError::other(
                "s3:GetObject",
                format!("object is {len} bytes, over the {max_bytes} limit"),
            ));
        }
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable {
                op: "s3:GetObject",
                detail: format!("reading body: {e}"),
            })?;
        Ok(data.into_bytes().to_vec())
    }

    async fn get_prefix(&self, key: &str, n: u64) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", n.saturating_sub(1)))
            .send()
            .await
            .map_err(|e| classify("s3:GetObject", e))?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable {
                op: "s3:GetObject",
                detail: format!("reading body: {e}"),
            })?;
        let mut v = data.into_bytes().to_vec();
        v.truncate(n as usize);
        Ok(v)
    }

    async fn head(&self, key: &str) -> Result<ObjectHead, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("s3:HeadObject", e))?;
        Ok(ObjectHead {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            content_type: out.content_type().map(str::to_owned),
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("s3:DeleteObject", e))?;
        Ok(())
    }

    /// Valid for `ttl` from now by the wall clock, whatever the app clock says: a URL is only
    /// useful if S3 accepts it.
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<Presigned, StoreError> {
        let now = OffsetDateTime::now_utc();
        let cfg = presigning(ttl, now)?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| StoreError::other("s3:presign GetObject", e.to_string()))?;
        Ok(Presigned {
            url: req.uri().to_string(),
            expires_at: now + ttl,
        })
    }

    async fn presign_post(
        &self,
        key: &str,
        ttl: Duration,
        max_bytes: u64,
    ) -> Result<PresignedPost, StoreError> {
        const OP: &str = "s3:presign POST";
        let now = OffsetDateTime::now_utc();
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| StoreError::other(OP, "no region configured"))?;
        let creds = self
            .credentials
            .as_ref()
            .ok_or_else(|| StoreError::other(OP, "no credentials to sign uploads with"))?
            .provide_credentials()
            .await
            .map_err(|e| StoreError::unavailable(OP, format!("credentials: {e}")))?;
        let fields = post_policy::sign(
            &post_policy::PostPolicy {
                bucket: &self.bucket,
                key,
                max_bytes,
                expires_at: now + ttl,
            },
            &post_policy::Signer {
                access_key_id: creds.access_key_id(),
                secret_access_key: creds.secret_access_key(),
                session_token: creds.session_token(),
                region: &region,
            },
            now,
        );
        Ok(PresignedPost {
            url: self.bucket_url(key, now).await?,
            fields,
            expires_at: now + ttl,
        })
    }
}

fn presigning(ttl: Duration, now: OffsetDateTime) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::builder()
        .start_time(std::time::SystemTime::from(now))
        .expires_in(ttl)
        .build()
        .map_err(|e| StoreError::other("s3:presign", e.to_string()))
}
