//! Resizer's AWS adapters: S3 buckets, the SQS queue and the DynamoDB tables, each bound to its
//! resource and implementing the application's ports; the stack's resource names; what each
//! function needs from IAM ([`iam`]); the SDK configuration.

pub mod dynamo;
pub mod error;
pub mod iam;
pub mod lambda;
pub mod post_policy;
pub mod resources;
pub mod s3;
pub mod sdk;
pub mod sqs;
#[cfg(feature = "stack")]
pub mod stack;
pub mod telemetry;
pub mod wire;

pub use error::StoreError;
pub use resources::Resources;
pub use sdk::load_sdk_config;
pub use wire::{Adapters, app, app_from_env};
