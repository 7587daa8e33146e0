//! The S3 adapter: staging and results objects, and presigned URLs.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use time::OffsetDateTime;

use crate::error::{StoreError, classify};

/// An object's size and type, from a HEAD request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub content_type: Option<String>,
}

/// A presigned request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub url: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("s3:PutObject", e))?;
        Ok(())
    }

    /// Reads a whole object. `max_bytes` guards memory: a larger object is an error before its
    /// body is read.
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
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

    /// Reads the first `n` bytes of an object (enough for a header).
    pub async fn get_prefix(&self, bucket: &str, key: &str, n: u64) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
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

    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectHead, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("s3:HeadObject", e))?;
        Ok(ObjectHead {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            content_type: out.content_type().map(str::to_owned),
        })
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("s3:DeleteObject", e))?;
        Ok(())
    }

    /// A presigned GET URL, valid for `ttl` from now (wall-clock time, whatever the app clock says:
    /// a URL is only useful if S3 accepts it). Signing is local: no request is sent.
    pub async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        let now = OffsetDateTime::now_utc();
        let cfg = presigning(ttl, now)?;
        let req = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| StoreError::other("s3:presign GetObject", e.to_string()))?;
        Ok(Presigned {
            url: req.uri().to_string(),
            expires_at: now + ttl,
        })
    }

    /// A presigned PUT URL, valid for `ttl`.
    pub async fn presign_put(
        &self,
        bucket: &str,
        key: &str,
        ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        let now = OffsetDateTime::now_utc();
        let cfg = presigning(ttl, now)?;
        let req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| StoreError::other("s3:presign PutObject", e.to_string()))?;
        Ok(Presigned {
            url: req.uri().to_string(),
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
