//! `POST /v1/uploads`: a presigned PUT URL into staging, for images over the inline limit.

use http::StatusCode;
use resizer_aws::AppState;
use resizer_core::job::{generate_upload_id, staging_key_upload};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::request::Request;
use crate::{Context, Reply, authenticate};

pub async fn create(state: &AppState, req: &Request, ctx: &mut Context) -> Result<Reply, ApiError> {
    let principal = authenticate(state, req, ctx).await?;
    if let Some((k, _)) = req.query.first() {
        return Err(ApiError::invalid(format!(
            "POST /v1/uploads takes no parameters, got {:?}",
            k.chars().take(40).collect::<String>()
        )));
    }
    if principal.over_quota() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            "the monthly job quota is used up; it resets on the 1st (UTC)",
        ));
    }
    let upload_id = generate_upload_id();
    let key = staging_key_upload(&principal.customer_id, &upload_id);
    let signed = state
        .s3
        .presign_put(
            &state.config.staging_bucket,
            &key,
            state.config.upload_url_ttl,
        )
        .await?;
    Ok(Reply::json(
        StatusCode::CREATED,
        json!({
            "upload_id": upload_id,
            "url": signed.url,
            "method": "PUT",
            "expires_at": signed.expires_at.format(&Rfc3339).unwrap_or_default(),
            "max_bytes": state.config.max_upload_bytes,
        }),
    ))
}
