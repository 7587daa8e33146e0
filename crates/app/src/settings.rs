//! The service's settings: limits, lifetimes and sizes, read once at cold start from the
//! environment, which the template fills from its parameters. A missing or malformed value fails
//! the cold start with a message naming the variable, rather than failing the first request.
//!
//! [`SETTINGS`] is the one list of them: each setting's variable, the template parameter that
//! sets it, its default and its range. A test holds `template.yaml`'s parameters to it, so a value
//! CloudFormation accepts is a value the functions accept.

use std::time::Duration;

use resizer_core::image::Limits;
use resizer_core::usage::{DEFAULT_SHARDS, MAX_SLICES, MAX_USAGE_SHARDS};

/// One numeric setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable the functions read.
    pub env: &'static str,
    /// The template parameter that sets it.
    pub parameter: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

const fn setting(
    env: &'static str,
    parameter: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Setting {
    Setting {
        env,
        parameter,
        default,
        min,
        max,
    }
}

pub const MAX_INLINE_BYTES: Setting =
    // Lambda's payload limit is 6 MB and API Gateway base64-encodes binary bodies.
    setting(
        "MAX_INLINE_BYTES",
        "MaxInlineBytes",
        4 * 1024 * 1024,
        1,
        4_500_000,
    );
pub const MAX_UPLOAD_BYTES: Setting = setting(
    "MAX_UPLOAD_BYTES",
    "MaxUploadBytes",
    25 * 1024 * 1024,
    1,
    5 << 30,
);
pub const MAX_INPUT_PIXELS: Setting =
    setting("MAX_INPUT_PIXELS", "MaxInputPixels", 50_000_000, 1, 1 << 32);
pub const MAX_INPUT_SIDE: Setting = setting("MAX_INPUT_SIDE", "MaxInputSide", 16_384, 1, 65_535);
pub const MAX_OUTPUT_SIDE: Setting = setting(
    "MAX_OUTPUT_SIDE",
    "MaxOutputSide",
    8_192,
    1,
    resizer_core::transform::MAX_DIMENSION as u64,
);
pub const MAX_OUTPUT_PIXELS: Setting = setting(
    "MAX_OUTPUT_PIXELS",
    "MaxOutputPixels",
    40_000_000,
    1,
    1 << 26,
);
pub const MAX_SLOW_OUTPUT_PIXELS: Setting = setting(
    "MAX_SLOW_OUTPUT_PIXELS",
    "MaxSlowOutputPixels",
    8_000_000,
    1,
    1 << 26,
);
pub const AUTH_CACHE_TTL_SECONDS: Setting =
    setting("AUTH_CACHE_TTL_SECONDS", "AuthCacheTtlSeconds", 60, 0, 3600);
pub const RESULT_URL_TTL_SECONDS: Setting = setting(
    "RESULT_URL_TTL_SECONDS",
    "ResultUrlTtlSeconds",
    900,
    1,
    7 * 24 * 3600,
);
pub const UPLOAD_URL_TTL_SECONDS: Setting = setting(
    "UPLOAD_URL_TTL_SECONDS",
    "UploadUrlTtlSeconds",
    900,
    1,
    3600,
);
/// The aggregator reads every partition up to [`MAX_USAGE_SHARDS`], so the count can change
/// either way at any time without hiding an item.
pub const USAGE_SHARDS: Setting = setting(
    "USAGE_SHARDS",
    "UsageShards",
    DEFAULT_SHARDS as u64,
    1,
    MAX_USAGE_SHARDS as u64,
);
/// Slices of the customer-id space an hour is aggregated in (one aggregate-slice invocation each).
pub const USAGE_SLICES: Setting = setting("USAGE_SLICES", "UsageSlices", 16, 1, MAX_SLICES as u64);
/// How long after its end an hour is closed: longer than the resize function's longest timeout
/// (120 s), so that no outcome commits into a closed hour.
pub const USAGE_GRACE_SECONDS: Setting =
    setting("USAGE_GRACE_SECONDS", "UsageGraceSeconds", 300, 150, 3600);
pub const RETRY_BACKOFF_BASE_SECONDS: Setting = setting(
    "RETRY_BACKOFF_BASE_SECONDS",
    "RetryBackoffBaseSeconds",
    15,
    1,
    900,
);
/// SQS caps a message's visibility timeout at 12 hours.
pub const RETRY_BACKOFF_MAX_SECONDS: Setting = setting(
    "RETRY_BACKOFF_MAX_SECONDS",
    "RetryBackoffMaxSeconds",
    900,
    1,
    43_200,
);
pub const MAX_CRASHES: Setting = setting("MAX_CRASHES", "MaxCrashes", 3, 1, 100);
pub const MAX_JOB_AGE_SECONDS: Setting = setting(
    "MAX_JOB_AGE_SECONDS",
    "MaxJobAgeSeconds",
    86_400,
    60,
    6 * 86_400,
);
/// How long an unfinished job may go unwritten before the sweeper sends it again (never less than
/// the longest retry backoff plus a minute: [`crate::App::sweep_stale_after`]).
pub const SWEEP_STALE_SECONDS: Setting = setting(
    "SWEEP_STALE_SECONDS",
    "SweepStaleSeconds",
    1_800,
    60,
    43_200,
);

/// Jobs a customer may submit per second, averaged over a window of
/// [`crate::RATE_WINDOW_SECONDS`] (so bursts of that many seconds' worth are admitted).
pub const CUSTOMER_JOBS_PER_SECOND: Setting = setting(
    "CUSTOMER_JOBS_PER_SECOND",
    "CustomerJobsPerSecond",
    100,
    1,
    100_000,
);

/// Unfinished jobs one customer may have at once (queued or processing): past it, a submit is
/// answered 429 `too_many_open_jobs`, so that one customer's backlog cannot fill the queue ahead
/// of everyone else's jobs (docs/capacity.md sizes it).
pub const CUSTOMER_MAX_OPEN_JOBS: Setting = setting(
    "CUSTOMER_MAX_OPEN_JOBS",
    "CustomerMaxOpenJobs",
    1_000,
    1,
    1_000_000,
);

/// The largest inline image that travels in its job's message instead of being staged in S3 (0:
/// every inline image is staged). The default is the break-even at list prices: up to 384,000
/// bytes the message stays within 8 SQS request units of 64 KiB (base64 and its JSON), whose
/// extra 7 units on send and on receive ($5.60 per million) cost less than the staging PUT, HEAD
/// and GET they replace ($5.80); docs/capacity.md. The maximum keeps the message under SQS's
/// 1 MiB.
pub const MESSAGE_IMAGE_MAX_BYTES: Setting = setting(
    "MESSAGE_IMAGE_MAX_BYTES",
    "MessageImageMaxBytes",
    384_000,
    0,
    780_000,
);

/// Every numeric setting.
pub const SETTINGS: &[Setting] = &[
    MAX_INLINE_BYTES,
    MESSAGE_IMAGE_MAX_BYTES,
    MAX_UPLOAD_BYTES,
    MAX_INPUT_PIXELS,
    MAX_INPUT_SIDE,
    MAX_OUTPUT_SIDE,
    MAX_OUTPUT_PIXELS,
    MAX_SLOW_OUTPUT_PIXELS,
    AUTH_CACHE_TTL_SECONDS,
    RESULT_URL_TTL_SECONDS,
    UPLOAD_URL_TTL_SECONDS,
    USAGE_SHARDS,
    USAGE_SLICES,
    USAGE_GRACE_SECONDS,
    RETRY_BACKOFF_BASE_SECONDS,
    RETRY_BACKOFF_MAX_SECONDS,
    MAX_CRASHES,
    MAX_JOB_AGE_SECONDS,
    SWEEP_STALE_SECONDS,
    CUSTOMER_JOBS_PER_SECOND,
    CUSTOMER_MAX_OPEN_JOBS,
];

/// The stage's variable (a string, not in [`SETTINGS`]).
pub const STAGE_ENV: &str = "STAGE";

/// The web origins whose pages may call the API from a browser (the template's
/// `CorsAllowedOrigins`): comma-separated `scheme://host[:port]`, or `*` for any; empty, none.
pub const CORS_ALLOWED_ORIGINS_ENV: &str = "CORS_ALLOWED_ORIGINS";

/// Everything the use cases need to know besides where the resources are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The deployment stage (a metrics dimension).
    pub stage: String,
    /// See [`CORS_ALLOWED_ORIGINS_ENV`]: `["*"]`, exact origins, or none.
    pub cors_allowed_origins: Vec<String>,
    pub limits: Limits,
    /// Largest image accepted in a request body.
    pub max_inline_bytes: u64,
    /// Largest image accepted through a presigned upload.
    pub max_upload_bytes: u64,
    /// See [`MESSAGE_IMAGE_MAX_BYTES`].
    pub message_image_max_bytes: u64,
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
    /// How long a message waits before its first redelivery after a transient failure; each
    /// further failure doubles it, up to [`Settings::retry_backoff_max`].
    pub retry_backoff_base: Duration,
    pub retry_backoff_max: Duration,
    /// After this many crashed attempts (the function died while converting), a job fails with
    /// `processing_failed`: it is the job, not the service.
    pub max_crashes: u32,
    /// A job older than this when it comes out of the dead-letter queue ends `expired` instead of
    /// being sent back to the jobs queue.
    pub max_job_age: Duration,
    /// See [`SWEEP_STALE_SECONDS`].
    pub sweep_stale_after: Duration,
    /// See [`CUSTOMER_JOBS_PER_SECOND`].
    pub customer_jobs_per_second: u64,
    /// See [`CUSTOMER_MAX_OPEN_JOBS`].
    pub customer_max_open_jobs: u64,
}

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

/// Parses [`CORS_ALLOWED_ORIGINS_ENV`]. An origin is what a browser sends in `Origin`: a scheme,
/// a host and maybe a port, nothing after; a typo (a path, a trailing slash) would never match,
/// so it fails the cold start instead.
fn cors_origins(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    let invalid = |reason: &str| ConfigError::Invalid {
        name: CORS_ALLOWED_ORIGINS_ENV,
        value: value.unwrap_or("").to_owned(),
        reason: reason.to_owned(),
    };
    if origins.iter().any(|o| o == "*") {
        return if origins.len() == 1 {
            Ok(origins)
        } else {
            Err(invalid(
                "* allows every origin and cannot be listed with others",
            ))
        };
    }
    for o in &origins {
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
            .ok_or_else(|| invalid("each origin starts with https:// or http://"))?;
        let (host, port) = rest.split_once(':').unwrap_or((rest, "0"));
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host_ok || port.parse::<u16>().is_err() {
            return Err(invalid(
                "each origin is scheme://host[:port], with no path or trailing slash",
            ));
        }
    }
    Ok(origins)
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

impl Setting {
    /// The setting's value from `get`: its default when unset or empty, else an integer in its
    /// range.
    pub fn read(&self, get: &impl Fn(&str) -> Option<String>) -> Result<u64, ConfigError> {
        let Some(v) = get(self.env).filter(|v| !v.trim().is_empty()) else {
            return Ok(self.default);
        };
        let n: u64 = v.trim().parse().map_err(|_| ConfigError::Invalid {
            name: self.env,
            value: v.clone(),
            reason: "not a non-negative integer".into(),
        })?;
        if (self.min..=self.max).contains(&n) {
            Ok(n)
        } else {
            Err(ConfigError::Invalid {
                name: self.env,
                value: v,
                reason: format!("must be {}..={}", self.min, self.max),
            })
        }
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
        let secs = |s: Setting| s.read(get).map(Duration::from_secs);
        let limits = Limits {
            max_input_pixels: MAX_INPUT_PIXELS.read(get)?,
            max_input_side: MAX_INPUT_SIDE.read(get)? as u32,
            max_output_side: MAX_OUTPUT_SIDE.read(get)? as u32,
            max_output_pixels: MAX_OUTPUT_PIXELS.read(get)?,
            max_slow_output_pixels: MAX_SLOW_OUTPUT_PIXELS.read(get)?,
        };
        Ok(Self {
            stage: get(STAGE_ENV).unwrap_or_else(|| "dev".into()),
            cors_allowed_origins: cors_origins(get(CORS_ALLOWED_ORIGINS_ENV).as_deref())?,
            limits,
            max_inline_bytes: MAX_INLINE_BYTES.read(get)?,
            max_upload_bytes: MAX_UPLOAD_BYTES.read(get)?,
            message_image_max_bytes: MESSAGE_IMAGE_MAX_BYTES.read(get)?,
            auth_cache_ttl: secs(AUTH_CACHE_TTL_SECONDS)?,
            result_url_ttl: secs(RESULT_URL_TTL_SECONDS)?,
            upload_url_ttl: secs(UPLOAD_URL_TTL_SECONDS)?,
            usage_shards: USAGE_SHARDS.read(get)? as u32,
            usage_slices: USAGE_SLICES.read(get)? as u32,
            usage_grace: secs(USAGE_GRACE_SECONDS)?,
            retry_backoff_base: secs(RETRY_BACKOFF_BASE_SECONDS)?,
            retry_backoff_max: secs(RETRY_BACKOFF_MAX_SECONDS)?,
            max_crashes: MAX_CRASHES.read(get)? as u32,
            max_job_age: secs(MAX_JOB_AGE_SECONDS)?,
            sweep_stale_after: secs(SWEEP_STALE_SECONDS)?,
            customer_jobs_per_second: CUSTOMER_JOBS_PER_SECOND.read(get)?,
            customer_max_open_jobs: CUSTOMER_MAX_OPEN_JOBS.read(get)?,
        })
    }

    /// How long to leave a message invisible after its `receives`-th delivery failed for a
    /// transient reason: the base, doubled per earlier receive, capped, with ±20 % jitter so that
    /// the messages of one outage do not all come back at once.
    pub fn retry_delay(&self, receives: u32) -> Duration {
        let doublings = receives.saturating_sub(1).min(20);
        let d = self
            .retry_backoff_base
            .saturating_mul(1 << doublings)
            .min(self.retry_backoff_max);
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        d.mul_f64(jitter).min(self.retry_backoff_max)
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
        for s in SETTINGS {
            assert!(s.min <= s.default && s.default <= s.max, "{}", s.env);
        }
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
    fn every_setting_is_read_and_nothing_else() {
        let asked = std::sync::Mutex::new(Vec::new());
        Settings::from_lookup(|k| {
            asked.lock().unwrap().push(k.to_owned());
            None
        })
        .unwrap();
        let mut asked = asked.into_inner().unwrap();
        asked.sort();
        let mut listed: Vec<String> = SETTINGS
            .iter()
            .map(|s| s.env.to_string())
            .chain([STAGE_ENV.to_string(), CORS_ALLOWED_ORIGINS_ENV.to_string()])
            .collect();
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

    #[test]
    fn cors_origins_are_exact_origins_or_a_star() {
        let read = |v: &str| {
            let mut m = HashMap::new();
            m.insert(CORS_ALLOWED_ORIGINS_ENV, v.to_owned());
            load(&m).map(|s| s.cors_allowed_origins)
        };
        assert_eq!(
            Settings::default().cors_allowed_origins,
            Vec::<String>::new()
        );
        assert_eq!(read(" ").unwrap(), Vec::<String>::new());
        assert_eq!(read("*").unwrap(), vec!["*"]);
        assert_eq!(
            read("https://app.example.com, http://localhost:5173").unwrap(),
            vec!["https://app.example.com", "http://localhost:5173"]
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/upload",
            "https://app.example.com:99999",
            "*,https://a.example",
            "ftp://a.example",
        ] {
            let err = read(bad).unwrap_err().to_string();
            assert!(err.contains(CORS_ALLOWED_ORIGINS_ENV), "{bad}: {err}");
        }
    }

    #[test]
    fn retry_delays_double_up_to_the_cap_with_jitter() {
        let s = Settings::default();
        for (receives, base) in [(1, 15.0), (2, 30.0), (3, 60.0), (6, 480.0)] {
            let d = s.retry_delay(receives).as_secs_f64();
            assert!((base * 0.8..=base * 1.2).contains(&d), "{receives}: {d}");
        }
        for receives in [7, 20, 1000] {
            assert!(s.retry_delay(receives) <= Duration::from_secs(900));
            assert!(s.retry_delay(receives) >= Duration::from_secs(720));
        }
    }
}
