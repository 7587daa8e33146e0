//! The aggregate Lambda function: scheduled usage rollups and archive.
