//! The stack's resources: the one list of what the template outputs and what the functions'
//! environment calls it. The config loader, the stack reader (CLI, local gateway, tests), the
//! template test and the integration tests all read this list.

use resizer_app::{ConfigError, required};

/// One resource the code needs: its stack output and the environment variable a function gets
/// it in (`None` where no function needs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    pub output: &'static str,
    pub env: Option<&'static str>,
    /// Whether every function gets the variable (the template's `Globals`), or only the one that
    /// needs it (a function cannot name itself).
    pub everywhere: bool,
}

const fn r(output: &'static str, env: &'static str) -> Resource {
    Resource {
        output,
        env: Some(env),
        everywhere: true,
    }
}

const fn one_function(output: &'static str, env: &'static str) -> Resource {
    Resource {
        output,
        env: Some(env),
        everywhere: false,
    }
}

const fn output_only(output: &'static str) -> Resource {
    Resource {
        output,
        env: None,
        everywhere: false,
    }
}

pub const STAGING_BUCKET: Resource = r("StagingBucketName", "STAGING_BUCKET");
pub const RESULTS_BUCKET: Resource = r("ResultsBucketName", "RESULTS_BUCKET");
/// The usage archive: its own bucket, versioned, never deleted from by the functions.
pub const USAGE_ARCHIVE_BUCKET: Resource = r("UsageArchiveBucketName", "USAGE_ARCHIVE_BUCKET");
pub const JOBS_QUEUE_URL: Resource = r("JobsQueueUrl", "JOBS_QUEUE_URL");
pub const JOBS_QUEUE_ARN: Resource = output_only("JobsQueueArn");
pub const JOBS_DLQ_URL: Resource = r("JobsDlqUrl", "JOBS_DLQ_URL");
pub const JOBS_DLQ_ARN: Resource = r("JobsDlqArn", "JOBS_DLQ_ARN");
pub const JOBS_TABLE: Resource = r("JobsTableName", "JOBS_TABLE");
pub const API_KEYS_TABLE: Resource = r("ApiKeysTableName", "API_KEYS_TABLE");
pub const CUSTOMERS_TABLE: Resource = r("CustomersTableName", "CUSTOMERS_TABLE");
pub const PRESETS_TABLE: Resource = r("PresetsTableName", "PRESETS_TABLE");
pub const USAGE_TABLE: Resource = r("UsageTableName", "USAGE_TABLE");
pub const USAGE_ROLLUPS_TABLE: Resource = r("UsageRollupsTableName", "USAGE_ROLLUPS_TABLE");
pub const RATE_LIMITS_TABLE: Resource = r("RateLimitsTableName", "RATE_LIMITS_TABLE");
pub const API_URL: Resource = output_only("ApiUrl");
/// Only where the template's ApiFunctionUrl parameter is "true" (the local deploy).
pub const API_FUNCTION_URL: Resource = output_only("ApiFunctionUrl");
pub const API_FUNCTION: Resource = output_only("ApiFunctionName");
pub const RESIZE_FUNCTION: Resource = output_only("ResizeFunctionName");
pub const AGGREGATE_FUNCTION: Resource = output_only("AggregateFunctionName");
/// The aggregate function invokes it once per slice of an hour.
pub const AGGREGATE_SLICE_FUNCTION: Resource =
    one_function("AggregateSliceFunctionName", "AGGREGATE_SLICE_FUNCTION");
pub const SWEEP_FUNCTION: Resource = output_only("SweepFunctionName");

/// Every resource every stack outputs, in the template's output order (not the conditional
/// [`API_FUNCTION_URL`]).
pub const ALL: &[Resource] = &[
    API_URL,
    STAGING_BUCKET,
    RESULTS_BUCKET,
    USAGE_ARCHIVE_BUCKET,
    JOBS_QUEUE_URL,
    JOBS_QUEUE_ARN,
    JOBS_DLQ_URL,
    JOBS_DLQ_ARN,
    JOBS_TABLE,
    API_KEYS_TABLE,
    CUSTOMERS_TABLE,
    PRESETS_TABLE,
    USAGE_TABLE,
    USAGE_ROLLUPS_TABLE,
    RATE_LIMITS_TABLE,
    API_FUNCTION,
    RESIZE_FUNCTION,
    AGGREGATE_FUNCTION,
    AGGREGATE_SLICE_FUNCTION,
    SWEEP_FUNCTION,
];

/// The names a function's adapters are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub staging_bucket: String,
    pub results_bucket: String,
    pub usage_archive_bucket: String,
    pub jobs_queue_url: String,
    pub jobs_dlq_url: String,
    /// The dead-letter queue's ARN: the resize function recognises dead-lettered messages by it.
    pub jobs_dlq_arn: Option<String>,
    pub jobs_table: String,
    pub api_keys_table: String,
    pub customers_table: String,
    pub presets_table: String,
    pub usage_table: String,
    pub usage_rollups_table: String,
    /// The aggregate-slice function (only the aggregate function has it; without it, an hour's
    /// slices run in this process).
    pub aggregate_slice_function: Option<String>,
    pub rate_limits_table: String,
}

impl Resources {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads each resource's environment variable from `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = &get;
        let req = |res: Resource| required(get, res.env.expect("a function's resource"));
        let optional = |res: Resource| {
            res.env
                .and_then(get)
                .filter(|v: &String| !v.trim().is_empty())
        };
        Ok(Self {
            staging_bucket: req(STAGING_BUCKET)?,
            results_bucket: req(RESULTS_BUCKET)?,
            usage_archive_bucket: req(USAGE_ARCHIVE_BUCKET)?,
            jobs_queue_url: req(JOBS_QUEUE_URL)?,
            jobs_dlq_url: req(JOBS_DLQ_URL)?,
            jobs_dlq_arn: optional(JOBS_DLQ_ARN),
            jobs_table: req(JOBS_TABLE)?,
            api_keys_table: req(API_KEYS_TABLE)?,
            customers_table: req(CUSTOMERS_TABLE)?,
            presets_table: req(PRESETS_TABLE)?,
            usage_table: req(USAGE_TABLE)?,
            usage_rollups_table: req(USAGE_ROLLUPS_TABLE)?,
            aggregate_slice_function: optional(AGGREGATE_SLICE_FUNCTION),
            rate_limits_table: req(RATE_LIMITS_TABLE)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, String> {
        ALL.iter()
            .filter_map(|r| r.env)
            .map(|e| (e, format!("value-of-{e}")))
            .collect()
    }

    #[test]
    fn every_function_resource_is_read_and_missing_ones_are_named() {
        let m = base();
        let r = Resources::from_lookup(|k| m.get(k).cloned()).unwrap();
        assert_eq!(r.jobs_table, "value-of-JOBS_TABLE");
        assert_eq!(r.jobs_dlq_arn.as_deref(), Some("value-of-JOBS_DLQ_ARN"));
        assert_eq!(
            r.aggregate_slice_function.as_deref(),
            Some("value-of-AGGREGATE_SLICE_FUNCTION")
        );
        let mut m = base();
        m.remove("JOBS_TABLE");
        assert_eq!(
            Resources::from_lookup(|k| m.get(k).cloned())
                .unwrap_err()
                .to_string(),
            "environment variable JOBS_TABLE is required but not set"
        );
        let mut m = base();
        m.remove("JOBS_DLQ_ARN");
        m.remove("AGGREGATE_SLICE_FUNCTION");
        let r = Resources::from_lookup(|k| m.get(k).cloned()).unwrap();
        assert_eq!((r.jobs_dlq_arn, r.aggregate_slice_function), (None, None));
    }

    #[test]
    fn names_are_unique() {
        let mut outputs: Vec<_> = ALL.iter().map(|r| r.output).collect();
        outputs.sort_unstable();
        outputs.dedup();
        assert_eq!(outputs.len(), ALL.len());
        let mut envs: Vec<_> = ALL.iter().filter_map(|r| r.env).collect();
        let n = envs.len();
        envs.sort_unstable();
        envs.dedup();
        assert_eq!(envs.len(), n);
    }
}
