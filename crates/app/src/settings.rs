//! The service's settings: limits, lifetimes and sizes, read once at cold start from the
//! environment (which the template fills from its parameters). A missing or malformed value fails
//! the cold start with a message naming the variable, rather than failing the first request.

use std::time::Duration;

use resizer_core::image::Limits;
use resizer_core::usage::{DEFAULT_SHARDS, MAX_SLICES, MAX_USAGE_SHARDS};

/// Everything the use cases need to know besides where the resources are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The deployment stage (a metrics dimension).
    pub stage: String,
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
    /// Partitions one hour of raw usage is spread over (by the writers; the aggregator reads
    /// every partition a writer may use).
    pub usage_shards: u32,
    /// Slices an hour's aggregation is cut into: one slice worker each, at once.
    pub usage_slices: u32,
    /// How long after its end an hour is closed: longer than a job's finish can take to commit
    /// (the resize function's timeout), so that nothing is recorded into a closed hour.
    pub usage_grace: Duration,
}

/// Every environment variable [`Settings::from_lookup`] reads (a test holds it to that), so that
/// the template test can check each function gets them all.
pub const SETTINGS_ENV: [&str; 12] = [
    "STAGE",
    "MAX_INLINE_BYTES",
    "MAX_UPLOAD_BYTES",
    "MAX_INPUT_PIXELS",
    "MAX_INPUT_SIDE",
    "MAX_OUTPUT_SIDE",
    "AUTH_CACHE_TTL_SECONDS",
    "RESULT_URL_TTL_SECONDS",
    "UPLOAD_URL_TTL_SECONDS",
    "USAGE_SHARDS",
    "USAGE_SLICES",
    "USAGE_GRACE_SECONDS",
];

impl Default for Settings {
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("the defaults are valid")
    }
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

/// Reads a required, non-empty variable.
pub fn required(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    get(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// Reads an optional integer variable in `min..=max`, `default` when unset or empty.
pub fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(v) = get(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
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

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from any lookup (the environment, a deployed function's environment, a test map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = &get;
        let defaults = Limits::default();
        let limits = Limits {
            max_input_pixels: number(
                get,
                "MAX_INPUT_PIXELS",
                defaults.max_input_pixels,
                1,
                1 << 32,
            )?,
            max_input_side: number(
                get,
                "MAX_INPUT_SIDE",
                u64::from(defaults.max_input_side),
                1,
                65_535,
            )? as u32,
            max_output_side: number(
                get,
                "MAX_OUTPUT_SIDE",
                u64::from(defaults.max_output_side),
                1,
                u64::from(resizer_core::transform::MAX_DIMENSION),
            )? as u32,
        };
        Ok(Self {
            stage: get("STAGE").unwrap_or_else(|| "dev".into()),
            limits,
            // Lambda's payload limit is 6 MB and API Gateway base64-encodes binary bodies.
            max_inline_bytes: number(get, "MAX_INLINE_BYTES", 4 * 1024 * 1024, 1, 4_500_000)?,
            max_upload_bytes: number(get, "MAX_UPLOAD_BYTES", 25 * 1024 * 1024, 1, 5 << 30)?,
            auth_cache_ttl: Duration::from_secs(number(
                get,
                "AUTH_CACHE_TTL_SECONDS",
                60,
                0,
                3600,
            )?),
            result_url_ttl: Duration::from_secs(number(
                get,
                "RESULT_URL_TTL_SECONDS",
                900,
                1,
                7 * 24 * 3600,
            )?),
            upload_url_ttl: Duration::from_secs(number(
                get,
                "UPLOAD_URL_TTL_SECONDS",
                900,
                1,
                3600,
            )?),
            usage_shards: number(
                get,
                "USAGE_SHARDS",
                u64::from(DEFAULT_SHARDS),
                1,
                u64::from(MAX_USAGE_SHARDS),
            )? as u32,
            usage_slices: number(get, "USAGE_SLICES", 16, 1, u64::from(MAX_SLICES))? as u32,
            usage_grace: Duration::from_secs(number(get, "USAGE_GRACE_SECONDS", 300, 0, 3600)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(m: &HashMap<&'static str, String>) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = load(&HashMap::new()).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.max_inline_bytes, 4_194_304);
        assert_eq!(c.max_upload_bytes, 26_214_400);
        assert_eq!(c.auth_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.result_url_ttl, Duration::from_secs(900));
        assert_eq!((c.usage_shards, c.usage_slices), (16, 16));
        assert_eq!(c.usage_grace, Duration::from_secs(300));
        assert_eq!(c, Settings::default());
    }

    #[test]
    fn invalid_variables_are_named() {
        let mut m = HashMap::new();
        m.insert("AUTH_CACHE_TTL_SECONDS", "soon".into());
        assert!(
            load(&m)
                .unwrap_err()
                .to_string()
                .contains("AUTH_CACHE_TTL_SECONDS")
        );
        let mut m = HashMap::new();
        m.insert("USAGE_SHARDS", "0".into());
        assert!(
            load(&m)
                .unwrap_err()
                .to_string()
                .contains("must be 1..=128")
        );
        let mut m = HashMap::new();
        m.insert("MAX_INLINE_BYTES", "6000000".into());
        assert!(
            load(&m).is_err(),
            "inline limit must stay under Lambda's payload limit"
        );
        assert_eq!(
            required(&|_: &str| None, "JOBS_TABLE")
                .unwrap_err()
                .to_string(),
            "environment variable JOBS_TABLE is required but not set"
        );
    }

    #[test]
    fn settings_env_lists_exactly_what_is_read() {
        let asked = std::sync::Mutex::new(Vec::new());
        Settings::from_lookup(|k| {
            asked.lock().unwrap().push(k.to_owned());
            None
        })
        .unwrap();
        let mut asked = asked.into_inner().unwrap();
        asked.sort();
        let mut listed: Vec<String> = SETTINGS_ENV.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(asked, listed);
    }

    #[test]
    fn overrides() {
        let mut m = HashMap::new();
        m.insert("AUTH_CACHE_TTL_SECONDS", "2".into());
        m.insert("MAX_INPUT_PIXELS", "1000".into());
        m.insert("STAGE", "prod".into());
        let c = load(&m).unwrap();
        assert_eq!(c.auth_cache_ttl, Duration::from_secs(2));
        assert_eq!(c.limits.max_input_pixels, 1000);
        assert_eq!(c.stage, "prod");
    }
}
