//! The resize Lambda function: SQS events with partial batch responses.
