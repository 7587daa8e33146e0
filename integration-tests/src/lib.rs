//! Shared helpers for the end-to-end tests against the deployed stack (the local AWS in `make test`).
//!
//! Everything comes from the standard AWS environment: the endpoint from `AWS_ENDPOINT_URL` (and
//! `AWS_ENDPOINT_URL_<SERVICE>`), the region and the credentials, as the functions get them. The
//! stack is named by `RESIZER_STACK`, and every resource name is read from its CloudFormation
//! outputs; nothing here knows where the local AWS lives. `make test` provides all of it by loading
//! `.local/stack.env`, which `make provision` writes.

pub mod athena;
pub mod usage_load;

use std::collections::HashMap;
use std::fmt;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::error::display::DisplayErrorContext;

/// What to do when the environment is missing, in every error that is about the environment.
pub const HOW_TO_RUN: &str = "These tests run against the deployed local stack. Run them with \
`make test` (it installs and starts the local AWS if needed, deploys template.yaml and exports \
.local/stack.env), or after `make dev` with: \
`set -a; . .local/stack.env; set +a; cargo test -p resizer-integration-tests`.";

/// A test failure with a readable message. Its `Debug` is its message, so that a test returning
/// `Err` prints the message itself rather than a struct dump.
pub struct Error(String);

impl Error {
    pub fn msg(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Any error converts with its whole source chain (SDK errors' own `Display` is terse).
impl<E: std::error::Error> From<E> for Error {
    fn from(err: E) -> Self {
        Error(DisplayErrorContext(&err).to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The deployed stack: its name, outputs and parameters.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    outputs: HashMap<String, String>,
    parameters: HashMap<String, String>,
}

impl Stack {
    pub fn output(&self, key: &str) -> Result<&str> {
        self.outputs
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::msg(format!("stack {} has no output {key}", self.name)))
    }

    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.get(key).map(String::as_str)
    }
}

/// SDK clients built once from the environment, and the stack they test.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub sdk: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub stack: Stack,
}

impl TestEnv {
    /// Build the clients from the environment and read the stack. Fails with a message that says
    /// how to run the tests when the environment is missing or the stack cannot be read.
    pub async fn load() -> Result<Self> {
        let stack_name = std::env::var("RESIZER_STACK")
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::msg(format!("RESIZER_STACK is not set. {HOW_TO_RUN}")))?;

        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        if sdk.region().is_none() {
            return Err(Error::msg(format!(
                "no AWS region is set (AWS_REGION). {HOW_TO_RUN}"
            )));
        }
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(s3_endpoint_overridden(&sdk))
            .build();
        let env = TestEnv {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            cloudformation: aws_sdk_cloudformation::Client::new(&sdk),
            stack: Stack {
                name: stack_name.clone(),
                outputs: HashMap::new(),
                parameters: HashMap::new(),
            },
            sdk,
        };
        let stack = env.read_stack(&stack_name).await.map_err(|err| {
            Error::msg(format!(
                "cannot read stack {stack_name} at {}: {err}\n{HOW_TO_RUN}",
                env.endpoint().unwrap_or("the default AWS endpoint")
            ))
        })?;
        Ok(TestEnv { stack, ..env })
    }

    /// The endpoint override (`AWS_ENDPOINT_URL`), if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.sdk.endpoint_url()
    }

    async fn read_stack(&self, name: &str) -> Result<Stack> {
        let described = self
            .cloudformation
            .describe_stacks()
            .stack_name(name)
            .send()
            .await?;
        let stack = described
            .stacks()
            .first()
            .ok_or_else(|| Error::msg(format!("stack {name} not found")))?;
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
        Ok(Stack {
            name: name.to_owned(),
            outputs,
            parameters,
        })
    }
}

/// S3 needs path-style addressing only when an endpoint override is present (virtual hosts of a
/// local endpoint do not resolve); against AWS itself the default (virtual-hosted) is right.
fn s3_endpoint_overridden(sdk: &SdkConfig) -> bool {
    sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

/// A name unique to one test run, for the objects, messages and items a test creates.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
