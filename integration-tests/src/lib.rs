//! Shared helpers for the end-to-end tests against the local AWS (LocalStack).
