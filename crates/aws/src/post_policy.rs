//! Presigned S3 POST uploads (AWS Signature Version 4): a policy that S3 enforces on the upload,
//! above all `content-length-range`, which a presigned PUT cannot carry. The SDK presigns
//! requests, not POST policies, so the policy document is built here and signed with the SDK's own
//! SigV4 primitives ([`aws_sigv4::sign::v4`]): the signature is the HMAC of the base64 policy
//! with the date/region/`s3` signing key (S3 API reference, "Authenticating Requests:
//! Browser-Based Uploads Using POST (AWS Signature Version 4)").

use std::time::SystemTime;

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What an upload may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicy<'a> {
    pub bucket: &'a str,
    /// The one key the upload may write.
    pub key: &'a str,
    /// Largest body accepted (S3 answers `EntityTooLarge` above it); the smallest is 1 byte.
    pub max_bytes: u64,
    pub expires_at: OffsetDateTime,
}

/// The credentials to sign with.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// A session token (Lambda's role credentials have one): a form field, and in the policy.
    pub session_token: Option<&'a str>,
    pub region: &'a str,
}

/// The form fields of a signed upload, in the order they are sent (the file goes after them).
pub fn sign(
    policy: &PostPolicy<'_>,
    signer: &Signer<'_>,
    now: OffsetDateTime,
) -> Vec<(String, String)> {
    let date = yyyymmdd(now);
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let credential = format!(
        "{}/{date}/{}/s3/aws4_request",
        signer.access_key_id, signer.region
    );
    let mut conditions = vec![
        json!({"bucket": policy.bucket}),
        json!({"key": policy.key}),
        json!(["content-length-range", 1, policy.max_bytes]),
        // Any type may be declared: the job checks the bytes, not the label.
        json!(["starts-with", "$Content-Type", ""]),
        json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
        json!({"x-amz-credential": credential}),
        json!({"x-amz-date": amz_date}),
    ];
    if let Some(t) = signer.session_token {
        conditions.push(json!({"x-amz-security-token": t}));
    }
    let document: Value = json!({
        "expiration": expiration(policy.expires_at),
        "conditions": conditions,
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(document.to_string());
    let signature = signature(signer.secret_access_key, now, signer.region, &encoded);
    let mut fields = vec![
        ("key".to_owned(), policy.key.to_owned()),
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), amz_date),
    ];
    if let Some(t) = signer.session_token {
        fields.push(("x-amz-security-token".to_owned(), t.to_owned()));
    }
    fields.push(("policy".to_owned(), encoded));
    fields.push(("x-amz-signature".to_owned(), signature));
    fields
}

/// The signature of a base64 policy: HMAC-SHA256 with the SigV4 signing key of `now`'s date.
pub fn signature(secret: &str, now: OffsetDateTime, region: &str, policy_base64: &str) -> String {
    let key =
        aws_sigv4::sign::v4::generate_signing_key(secret, SystemTime::from(now), region, "s3");
    aws_sigv4::sign::v4::calculate_signature(key, policy_base64.as_bytes())
}

fn yyyymmdd(t: OffsetDateTime) -> String {
    format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day())
}

/// `2015-12-30T12:00:00.000Z`: the policy's expiration, in UTC with milliseconds.
fn expiration(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let s = t
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default();
    // Rfc3339 writes `…:00Z` without fractions once they are zero.
    s.trim_end_matches('Z').to_owned() + ".000Z"
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// The worked example of the S3 API reference ("Example: Browser-Based Upload using HTTP
    /// POST (Using AWS Signature Version 4)"): its policy, as the page encodes it (CRLF line
    /// ends), the example credentials, and the signature it publishes.
    #[test]
    fn the_signature_of_the_aws_documentation_example() {
        let policy = [
            r#"{ "expiration": "2015-12-30T12:00:00.000Z","#,
            r#"  "conditions": ["#,
            r#"    {"bucket": "sigv4examplebucket"},"#,
            r#"    ["starts-with", "$key", "user/user1/"],"#,
            r#"    {"acl": "public-read"},"#,
            r#"    {"success_action_redirect": "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html"},"#,
            r#"    ["starts-with", "$Content-Type", "image/"],"#,
            r#"    {"x-amz-meta-uuid": "14365123651274"},"#,
            r#"    {"x-amz-server-side-encryption": "AES256"},"#,
            r#"    ["starts-with", "$x-amz-meta-tag", ""],"#,
            "",
            r#"    {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"},"#,
            r#"    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},"#,
            r#"    {"x-amz-date": "20151229T000000Z" }"#,
            "  ]",
            "}",
        ]
        .join("\r\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(policy);
        assert!(
            encoded.ends_with("ICBdDQp9"),
            "the page's encoding: {encoded}"
        );
        assert_eq!(
            signature(
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                datetime!(2015-12-29 00:00 UTC),
                "us-east-1",
                &encoded
            ),
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }

    #[test]
    fn the_fields_carry_a_policy_that_bounds_the_size_and_names_the_key() {
        let now = datetime!(2026-11-30 17:05:09 UTC);
        let policy = PostPolicy {
            bucket: "staging",
            key: "uploads/cus_a/upl_b",
            max_bytes: 1000,
            expires_at: now + time::Duration::minutes(15),
        };
        let signer = Signer {
            access_key_id: "AKID",
            secret_access_key: "secret",
            session_token: Some("token"),
            region: "eu-west-1",
        };
        let fields = sign(&policy, &signer, now);
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("key"), "uploads/cus_a/upl_b");
        assert_eq!(
            get("x-amz-credential"),
            "AKID/20261130/eu-west-1/s3/aws4_request"
        );
        assert_eq!(get("x-amz-date"), "20261130T170509Z");
        assert_eq!(get("x-amz-security-token"), "token");
        let doc: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(get("policy"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(doc["expiration"], "2026-11-30T17:20:09.000Z");
        let conditions = doc["conditions"].as_array().unwrap();
        assert!(conditions.contains(&json!(["content-length-range", 1, 1000])));
        assert!(conditions.contains(&json!({"key": "uploads/cus_a/upl_b"})));
        assert!(conditions.contains(&json!({"bucket": "staging"})));
        assert!(conditions.contains(&json!({"x-amz-security-token": "token"})));
        assert_eq!(
            get("x-amz-signature"),
            signature("secret", now, "eu-west-1", &get("policy"))
        );
        assert_eq!(fields.last().unwrap().0, "x-amz-signature");
    }
}
