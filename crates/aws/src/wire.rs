//! Wiring: the AWS adapters of one stack, each bound to its resource, behind the application's
//! ports.

use std::sync::Arc;

use aws_config::SdkConfig;
use resizer_app::ports::SliceRunner;
use resizer_app::{App, ConfigError, LocalSlices, Metrics, Settings, SliceDeps, Stores};

use crate::dynamo::{AccountsTables, JobsTable, RateCountersTable, RollupsTable, UsageTable};
use crate::lambda::LambdaSlices;
use crate::resources::Resources;
use crate::s3::S3Bucket;
use crate::sdk::{load_sdk_config, s3_client};
use crate::sqs::SqsQueue;

/// Every adapter of one stack.
#[derive(Debug, Clone)]
pub struct Adapters {
    pub staging: S3Bucket,
    pub results: S3Bucket,
    pub archive: S3Bucket,
    pub queue: SqsQueue,
    pub dead_letters: SqsQueue,
    pub jobs: JobsTable,
    pub accounts: AccountsTables,
    pub usage: UsageTable,
    pub rollups: RollupsTable,
    /// The aggregate-slice function, where the resources name it.
    pub slices: Option<LambdaSlices>,
    pub rate_counters: RateCountersTable,
}

impl Adapters {
    pub fn new(sdk: &SdkConfig, resources: &Resources, settings: &Settings) -> Self {
        let s3 = s3_client(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let usage = UsageTable::new(
            dynamodb.clone(),
            &resources.usage_table,
            settings.usage_shards,
        );
        Self {
            staging: S3Bucket::new(s3.clone(), &resources.staging_bucket)
                .on_request_path()
                .with_credentials(sdk.credentials_provider()),
            results: S3Bucket::new(s3.clone(), &resources.results_bucket).on_request_path(),
            archive: S3Bucket::new(s3, &resources.usage_archive_bucket),
            queue: SqsQueue::new(sqs.clone(), &resources.jobs_queue_url),
            dead_letters: SqsQueue::new(sqs, &resources.jobs_dlq_url),
            jobs: JobsTable::new(dynamodb.clone(), &resources.jobs_table, usage.clone()),
            accounts: AccountsTables::new(
                dynamodb.clone(),
                &resources.api_keys_table,
                &resources.customers_table,
                &resources.presets_table,
            ),
            usage,
            rollups: RollupsTable::new(dynamodb.clone(), &resources.usage_rollups_table),
            rate_counters: RateCountersTable::new(dynamodb, &resources.rate_limits_table),
            slices: resources
                .aggregate_slice_function
                .as_ref()
                .map(|f| LambdaSlices::new(sdk, f)),
        }
    }

    /// The adapters as the application's ports. An hour's slices run in the aggregate-slice
    /// function where the resources name it, in this process otherwise.
    pub fn stores(&self) -> Stores {
        let usage_log: Arc<dyn resizer_app::ports::UsageLog> = Arc::new(self.usage.clone());
        let rollups: Arc<dyn resizer_app::ports::Rollups> = Arc::new(self.rollups.clone());
        let archive: Arc<dyn resizer_app::ports::ObjectStore> = Arc::new(self.archive.clone());
        let slices: Arc<dyn SliceRunner> = match &self.slices {
            Some(l) => Arc::new(l.clone()),
            None => Arc::new(LocalSlices::new(SliceDeps::of(
                &usage_log, &rollups, &archive,
            ))),
        };
        Stores {
            jobs: Arc::new(self.jobs.clone()),
            staging: Arc::new(self.staging.clone()),
            results: Arc::new(self.results.clone()),
            archive,
            queue: Arc::new(self.queue.clone()),
            dead_letters: Arc::new(self.dead_letters.clone()),
            accounts: Arc::new(self.accounts.clone()),
            usage_log,
            rollups,
            slices,
            rate_counters: Arc::new(self.rate_counters.clone()),
        }
    }
}

/// An [`App`] on the AWS adapters of the stack named by `resources`.
pub fn app(sdk: &SdkConfig, resources: &Resources, settings: Settings) -> App {
    let adapters = Adapters::new(sdk, resources, &settings);
    App::new(settings, adapters.stores())
}

/// For a function's cold start: resources and settings from the environment, clients from the
/// default chain, metrics on stdout. Call it once. A missing or malformed variable fails here,
/// logged with its name, before the first event.
pub async fn app_from_env() -> Result<(App, Resources), ConfigError> {
    let config = Resources::from_env().and_then(|r| Ok((r, Settings::from_env()?)));
    let (resources, settings) =
        config.inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    let sdk = load_sdk_config().await;
    let metrics = Metrics::stdout(&settings.stage);
    Ok((
        app(&sdk, &resources, settings).with_metrics(metrics),
        resources,
    ))
}
