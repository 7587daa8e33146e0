//! `resizer`: the operator's and developer's command.
//!
//! - `resizer admin …` manages customers, keys and usage straight in DynamoDB (the management
//!   plane);
//! - `resizer dev` serves the HTTP API on 127.0.0.1 against the local AWS, the way API Gateway,
//!   the SQS event source mapping and the schedule would;
//! - `resizer resize`, `resizer usage` and `resizer jobs get` call the HTTP API as a customer.

mod admin;
mod client;
mod dev;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "resizer",
    version,
    about = "Resizer: serverless image resizing on AWS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage customers, API keys and usage (needs AWS credentials for the stack's tables).
    Admin(admin::AdminArgs),
    /// Serve the HTTP API locally against the local AWS (LocalStack), running the real handlers.
    Dev(dev::DevArgs),
    /// Resize an image through the HTTP API and save the result.
    Resize(client::ResizeArgs),
    /// Show your usage rollups.
    Usage(client::UsageArgs),
    /// Inspect jobs.
    Jobs(client::JobsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Admin(a) => admin::run(a).await,
            Command::Dev(a) => dev::run(a).await,
            Command::Resize(a) => client::resize(a).await,
            Command::Usage(a) => client::usage(a).await,
            Command::Jobs(a) => client::jobs(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A command's failure: one line for humans, no stack trace.
#[derive(Debug)]
pub struct CliError(String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl CliError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl From<resizer_aws::StoreError> for CliError {
    fn from(e: resizer_aws::StoreError) -> Self {
        Self(e.to_string())
    }
}

impl From<resizer_aws::ConfigError> for CliError {
    fn from(e: resizer_aws::ConfigError) -> Self {
        Self(format!(
            "{e} (set RESIZER_STACK to read names from a deployed stack, or `source .local/stack.env`)"
        ))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// The stack's configuration: from `--stack`/`RESIZER_STACK` outputs, else the environment.
pub async fn load_state(stack: Option<&str>) -> CliResult<resizer_aws::AppState> {
    let sdk = resizer_aws::load_sdk_config().await;
    let config = match stack {
        Some(name) => resizer_aws::stack::StackInfo::describe(&sdk, name)
            .await
            .map_err(|e| CliError::new(format!("cannot read stack {name:?}: {e}")))?
            .config()?,
        None => resizer_aws::Config::from_env()?,
    };
    Ok(resizer_aws::AppState::new(&sdk, config))
}
