//! Configuration from the environment, validated once at cold start.
//!
//! A missing or malformed variable fails the cold start with a message naming it, rather than
//! failing the first request.

use std::time::Duration;

use resizer_core::pipeline::Limits;

/// Everything a function needs to know about its stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub stage: String,
    pub staging_bucket: String,
    pub results_bucket: String,
    pub jobs_queue_url: String,
    /// The dead-letter queue's ARN: the resize function recognises dead-lettered messages by it.
    pub jobs_dlq_arn: Option<String>,
    pub jobs_table: String,
    pub api_keys_table: String,
    pub customers_table: String,
    pub usage_table: String,
    pub usage_rollups_table: String,
    pub limits: Limits,
    /// Largest image accepted in a request body.
    pub max_inline_bytes: u64,
    /// Largest image accepted through a presigned upload.
    pub max_upload_bytes: u64,
    /// How long a warm container trusts a key record it has read: the bound on revocation.
    pub auth_cache_ttl: Duration,
    /// Lifetime of the presigned GET URL of a result.
    pub result_url_ttl: Duration,
    /// Lifetime of a presigned upload URL.
    pub upload_url_ttl: Duration,
    /// Partitions one hour of raw usage is spread over.
    pub usage_shards: u32,
    /// Hours before the current one that the aggregator recomputes (late arrivals).
    pub usage_late_window_hours: u32,
}

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason} (got {value:?})")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from any lookup (the environment, stack outputs mapped to env names, a test map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let number =
            |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
                match get(name).filter(|v| !v.trim().is_empty()) {
                    None => Ok(default),
                    Some(v) => {
                        let n: u64 = v.trim().parse().map_err(|_| ConfigError::Invalid {
                            name,
                            value: v.clone(),
                            reason: "not a non-negative integer".into(),
                        })?;
                        if (min..=max).contains(&n) {
                            Ok(n)
                        } else {
                            Err(ConfigError::Invalid {
                                name,
                                value: v,
                                reason: format!("must be {min}..={max}"),
                            })
                        }
                    }
                }
            };
        let defaults = Limits::default();
        let limits = Limits {
            max_input_pixels: number("MAX_INPUT_PIXELS", defaults.max_input_pixels, 1, 1 << 32)?,
            max_input_side: number(
                "MAX_INPUT_SIDE",
                u64::from(defaults.max_input_side),
                1,
                65_535,
            )? as u32,
            max_output_side: number(
                "MAX_OUTPUT_SIDE",
                u64::from(defaults.max_output_side),
                1,
                u64::from(resizer_core::transform::MAX_DIMENSION),
            )? as u32,
        };
        Ok(Self {
            stage: get("STAGE").unwrap_or_else(|| "dev".into()),
            staging_bucket: required("STAGING_BUCKET")?,
            results_bucket: required("RESULTS_BUCKET")?,
            jobs_queue_url: required("JOBS_QUEUE_URL")?,
            jobs_dlq_arn: get("JOBS_DLQ_ARN").filter(|v| !v.trim().is_empty()),
            jobs_table: required("JOBS_TABLE")?,
            api_keys_table: required("API_KEYS_TABLE")?,
            customers_table: required("CUSTOMERS_TABLE")?,
            usage_table: required("USAGE_TABLE")?,
            usage_rollups_table: required("USAGE_ROLLUPS_TABLE")?,
            limits,
            // Lambda's payload limit is 6 MB and API Gateway base64-encodes binary bodies.
            max_inline_bytes: number("MAX_INLINE_BYTES", 4 * 1024 * 1024, 1, 4_500_000)?,
            max_upload_bytes: number("MAX_UPLOAD_BYTES", 25 * 1024 * 1024, 1, 5 << 30)?,
            auth_cache_ttl: Duration::from_secs(number("AUTH_CACHE_TTL_SECONDS", 60, 0, 3600)?),
            result_url_ttl: Duration::from_secs(number(
                "RESULT_URL_TTL_SECONDS",
                900,
                1,
                7 * 24 * 3600,
            )?),
            upload_url_ttl: Duration::from_secs(number("UPLOAD_URL_TTL_SECONDS", 900, 1, 3600)?),
            usage_shards: number("USAGE_SHARDS", 16, 1, 1000)? as u32,
            usage_late_window_hours: number("USAGE_LATE_WINDOW_HOURS", 3, 0, 48)? as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, String> {
        [
            ("STAGING_BUCKET", "s"),
            ("RESULTS_BUCKET", "r"),
            ("JOBS_QUEUE_URL", "http://q"),
            ("JOBS_TABLE", "jobs"),
            ("API_KEYS_TABLE", "keys"),
            ("CUSTOMERS_TABLE", "customers"),
            ("USAGE_TABLE", "usage"),
            ("USAGE_ROLLUPS_TABLE", "rollups"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }

    fn load(m: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = load(&base()).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.max_inline_bytes, 4_194_304);
        assert_eq!(c.max_upload_bytes, 26_214_400);
        assert_eq!(c.auth_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.result_url_ttl, Duration::from_secs(900));
        assert_eq!((c.usage_shards, c.usage_late_window_hours), (16, 3));
        assert_eq!(c.jobs_dlq_arn, None);
    }

    #[test]
    fn missing_and_invalid_variables_are_named() {
        let mut m = base();
        m.remove("JOBS_TABLE");
        assert_eq!(
            load(&m).unwrap_err().to_string(),
            "environment variable JOBS_TABLE is required but not set"
        );
        let mut m = base();
        m.insert("AUTH_CACHE_TTL_SECONDS", "soon".into());
        assert!(
            load(&m)
                .unwrap_err()
                .to_string()
                .contains("AUTH_CACHE_TTL_SECONDS")
        );
        let mut m = base();
        m.insert("USAGE_SHARDS", "0".into());
        assert!(
            load(&m)
                .unwrap_err()
                .to_string()
                .contains("must be 1..=1000")
        );
        let mut m = base();
        m.insert("MAX_INLINE_BYTES", "6000000".into());
        assert!(
            load(&m).is_err(),
            "inline limit must stay under Lambda's payload limit"
        );
    }

    #[test]
    fn overrides() {
        let mut m = base();
        m.insert("AUTH_CACHE_TTL_SECONDS", "2".into());
        m.insert("MAX_INPUT_PIXELS", "1000".into());
        m.insert(
            "JOBS_DLQ_ARN",
            "arn:aws:sqs:us-east-1:000000000000:dlq".into(),
        );
        let c = load(&m).unwrap();
        assert_eq!(c.auth_cache_ttl, Duration::from_secs(2));
        assert_eq!(c.limits.max_input_pixels, 1000);
        assert!(c.jobs_dlq_arn.is_some());
    }
}
