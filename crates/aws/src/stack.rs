//! Reading a deployed stack's outputs (CloudFormation), for tools that run outside Lambda: the
//! `resizer` CLI, the local gateway and the tests. Functions get the same names through their
//! environment; [`crate::resources`] lists both.

use std::collections::HashMap;

use aws_config::SdkConfig;
use resizer_app::{App, ConfigError, Settings};

use crate::error::{StoreError, classify};
use crate::resources::{self, Resource, Resources};

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

    /// One output's value.
    pub fn output(&self, r: Resource) -> Option<&str> {
        self.outputs.get(r.output).map(String::as_str)
    }

    /// The value a function would see in env var `name`: the matching output, else the process
    /// environment (limits and TTLs can be overridden that way).
    pub fn env(&self, name: &str) -> Option<String> {
        resources::ALL
            .iter()
            .find(|r| r.env == Some(name))
            .and_then(|r| self.output(*r).map(str::to_owned))
            .or_else(|| std::env::var(name).ok())
    }

    pub fn resources(&self) -> Result<Resources, ConfigError> {
        Resources::from_lookup(|k| self.env(k))
    }

    pub fn settings(&self) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| self.env(k))
    }

    /// An [`App`] on this stack's resources, with settings from the environment.
    pub fn app(&self, sdk: &SdkConfig) -> Result<App, ConfigError> {
        Ok(crate::wire::app(sdk, &self.resources()?, self.settings()?))
    }
}
