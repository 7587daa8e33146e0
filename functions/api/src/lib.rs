//! The api Lambda function: API Gateway HTTP API (payload 2.0) events.
