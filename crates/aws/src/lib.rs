//! Resizer's AWS adapters: S3, SQS and DynamoDB, presigning, and configuration from the
//! environment. One [`AppState`] is built at cold start and lent to every invocation.

pub mod auth;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod metrics;
pub mod s3;
pub mod sqs;
#[cfg(feature = "stack")]
pub mod stack;
pub mod state;
pub mod telemetry;

pub use config::{Config, ConfigError};
pub use error::StoreError;
pub use state::{AppState, Clock, load_sdk_config};
