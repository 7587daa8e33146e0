//! Resizer's domain, free of AWS and of async.
//!
//! - [`transform`]: the transform parameters a customer sends, parsed into validated newtypes.
//! - [`pipeline`]: bytes in, transformed bytes out, bounded by [`pipeline::Limits`].
//! - [`job`]: job identity, states and the forward-only state machine.
//! - [`key`]: API key format, generation and constant-time verification.
//! - [`usage`]: raw usage records, their keys, and the rollup maths.

pub mod job;
pub mod key;
pub mod pipeline;
pub mod transform;
pub mod usage;
