//! The state a function builds once at cold start and lends to every invocation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::timeout::TimeoutConfig;
use time::OffsetDateTime;

use crate::auth::AuthCache;
use crate::config::{Config, ConfigError};
use crate::dynamo::{TableNames, Tables};
use crate::metrics::Metrics;
use crate::s3::S3Store;
use crate::sqs::JobQueue;

/// The time source. The system clock in production; tests set it, so that hours can pass
/// without sleeping.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<Mutex<OffsetDateTime>>>);

impl Clock {
    pub fn system() -> Self {
        Self(None)
    }

    pub fn fixed(t: OffsetDateTime) -> Self {
        Self(Some(Arc::new(Mutex::new(t))))
    }

    pub fn now(&self) -> OffsetDateTime {
        match &self.0 {
            None => OffsetDateTime::now_utc(),
            Some(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Sets a fixed clock's time. A system clock ignores this.
    pub fn set(&self, t: OffsetDateTime) {
        if let Some(cur) = &self.0 {
            *cur.lock().unwrap_or_else(|p| p.into_inner()) = t;
        }
    }

    pub fn advance(&self, d: time::Duration) {
        if let Some(cur) = &self.0 {
            let mut g = cur.lock().unwrap_or_else(|p| p.into_inner());
            *g += d;
        }
    }
}

/// How long a connection may take before the attempt fails: the same for every call, long polls
/// included (see `sqs::long_poll_timeouts`).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Loads the SDK configuration from the standard chain (env, profile, container/instance
/// credentials), with timeouts that turn a dead dependency into a quick, retryable error rather
/// than a hung invocation. Endpoints come from `AWS_ENDPOINT_URL` and
/// `AWS_ENDPOINT_URL_<SERVICE>`; there is no local-mode switch.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(25))
                .build(),
        )
        .load()
        .await
}

/// Whether S3 needs path-style addressing: only when an endpoint override is present
/// (LocalStack, MinIO…), where `<bucket>.<host>` virtual hosts do not resolve.
fn s3_endpoint_overridden(sdk: &SdkConfig) -> bool {
    sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

/// Everything a handler needs: configuration, clients, and the warm caches.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Config,
    pub s3: S3Store,
    pub queue: JobQueue,
    pub tables: Tables,
    pub clock: Clock,
    pub auth_cache: Arc<AuthCache>,
    pub metrics: Metrics,
}

impl AppState {
    /// For Lambda: configuration from the environment, clients from the default chain. Call it
    /// once, at cold start.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let sdk = load_sdk_config().await;
        Ok(Self::new(&sdk, config).with_metrics(Metrics::stdout()))
    }

    /// For tests and the local gateway: any SDK configuration and any [`Config`].
    pub fn new(sdk: &SdkConfig, config: Config) -> Self {
        let s3_conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(s3_endpoint_overridden(sdk))
            .build();
        let s3 = S3Store::new(aws_sdk_s3::Client::from_conf(s3_conf));
        let queue = JobQueue::new(aws_sdk_sqs::Client::new(sdk), config.jobs_queue_url.clone());
        let tables = Tables::new(
            aws_sdk_dynamodb::Client::new(sdk),
            TableNames {
                jobs: config.jobs_table.clone(),
                api_keys: config.api_keys_table.clone(),
                customers: config.customers_table.clone(),
                usage: config.usage_table.clone(),
                usage_rollups: config.usage_rollups_table.clone(),
            },
            config.usage_shards,
        );
        Self {
            auth_cache: Arc::new(AuthCache::new(config.auth_cache_ttl)),
            config,
            s3,
            queue,
            tables,
            clock: Clock::system(),
            metrics: Metrics::off(),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = Clock::fixed(datetime!(2026-11-25 10:00 UTC));
        let c2 = c.clone();
        assert_eq!(c.now(), datetime!(2026-11-25 10:00 UTC));
        c2.advance(time::Duration::hours(2));
        assert_eq!(c.now(), datetime!(2026-11-25 12:00 UTC));
        c.set(datetime!(2026-01-01 0:00 UTC));
        assert_eq!(c2.now(), datetime!(2026-01-01 0:00 UTC));
        let sys = Clock::system();
        sys.set(datetime!(2000-01-01 0:00 UTC));
        assert!(sys.now().year() >= 2026);
    }
}
