//! Reading a deployed stack's outputs (CloudFormation), for tools that run outside Lambda: the
//! `resizer` CLI and the local gateway. Functions get the same names through their environment.

use std::collections::HashMap;

use aws_config::SdkConfig;

use crate::config::{Config, ConfigError};
use crate::error::{StoreError, classify};

/// Stack output → the environment variable a function gets for it.
pub const OUTPUT_ENV: &[(&str, &str)] = &[
    ("StagingBucketName", "STAGING_BUCKET"),
    ("ResultsBucketName", "RESULTS_BUCKET"),
    ("JobsQueueUrl", "JOBS_QUEUE_URL"),
    ("JobsDlqUrl", "JOBS_DLQ_URL"),
    ("JobsDlqArn", "JOBS_DLQ_ARN"),
    ("JobsQueueArn", "JOBS_QUEUE_ARN"),
    ("JobsTableName", "JOBS_TABLE"),
    ("ApiKeysTableName", "API_KEYS_TABLE"),
    ("CustomersTableName", "CUSTOMERS_TABLE"),
    ("UsageTableName", "USAGE_TABLE"),
    ("UsageRollupsTableName", "USAGE_ROLLUPS_TABLE"),
];

/// A deployed stack's outputs and parameters.
#[derive(Debug, Clone, Default)]
pub struct StackInfo {
    pub name: String,
    pub outputs: HashMap<String, String>,
    pub parameters: HashMap<String, String>,
}

impl StackInfo {
    pub async fn describe(sdk: &SdkConfig, name: &str) -> Result<Self, StoreError> {
        let cfn = aws_sdk_cloudformation::Client::new(sdk);
        let out = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| classify("cloudformation:DescribeStacks", e))?;
        let stack = out.stacks().first().ok_or(StoreError::NotFound {
            op: "cloudformation:DescribeStacks",
        })?;
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        let parameters = stack
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_owned(),
                    p.parameter_value()?.to_owned(),
                ))
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            outputs,
            parameters,
        })
    }

    /// The value a function would see in env var `name`: the matching output, else the process
    /// environment (limits and TTLs can be overridden that way).
    pub fn env(&self, name: &str) -> Option<String> {
        OUTPUT_ENV
            .iter()
            .find(|(_, env)| *env == name)
            .and_then(|(out, _)| self.outputs.get(*out).cloned())
            .or_else(|| std::env::var(name).ok())
    }

    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| self.env(k))
    }
}
