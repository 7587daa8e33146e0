//! Resizer's AWS adapters: S3, SQS, DynamoDB, presigning and configuration from the environment.
