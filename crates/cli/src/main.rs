//! `resizer`: the operator's and developer's command.
//!
//! - `resizer admin …` manages customers, keys and usage straight in DynamoDB (the management
//!   plane);
//! - `resizer dev` serves the HTTP API on 127.0.0.1 against the local AWS, the way API Gateway,
//!   the SQS event source mapping and the schedule would;
//! - `resizer resize`, `resizer usage`, `resizer jobs get` and `resizer presets …` call the HTTP
//!   API as a customer.

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
    /// Your presets (named transforms): list, get, put, delete.
    Presets(client::PresetsArgs),
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
            Command::Presets(a) => client::presets(a).await,
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
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Store(#[from] resizer_app::StoreError),
    #[error(
        "{0} (set RESIZER_STACK to read names from a deployed stack, or `source .local/stack.env`)"
    )]
    Config(#[from] resizer_app::ConfigError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self::Message(msg.into())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

impl From<resizer_app::AppError> for CliError {
    fn from(e: resizer_app::AppError) -> Self {
        Self::Message(e.to_string())
    }
}

/// `name=value` arguments (a preset's transform parameters) as pairs.
pub fn assignments(args: &[String]) -> CliResult<Vec<(String, String)>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(CliError::new(format!(
                "{a:?} is not name=value (for example width=300 fit=cover)"
            ))),
        })
        .collect()
}

/// The service on the stack named by `--stack`/`RESIZER_STACK` (its outputs), else on the names
/// in the environment (as the functions get them).
pub async fn load_app(stack: Option<&str>) -> CliResult<resizer_app::App> {
    let sdk = resizer_aws::load_sdk_config().await;
    Ok(match stack {
        Some(name) => resizer_aws::stack::StackInfo::describe(&sdk, name)
            .await
            .map_err(|e| CliError::new(format!("cannot read stack {name:?}: {e}")))?
            .app(&sdk)?,
        None => resizer_aws::app(
            &sdk,
            &resizer_aws::Resources::from_env()?,
            resizer_app::Settings::from_env()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn assignments_are_name_equals_value() {
        let args: Vec<String> = ["width=300", "background= fff", "x=a=b"]
            .map(String::from)
            .into();
        assert_eq!(
            super::assignments(&args).unwrap(),
            [
                ("width".to_owned(), "300".to_owned()),
                ("background".to_owned(), " fff".to_owned()),
                ("x".to_owned(), "a=b".to_owned()),
            ]
        );
        for bad in ["width", "=3", " =3"] {
            let e = super::assignments(&[bad.to_owned()]).unwrap_err();
            assert!(e.to_string().contains("is not name=value"), "{e}");
        }
    }
}
