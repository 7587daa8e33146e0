//! The fault proxy behind the chaos suite (`make chaos`).
//!
//! The local AWS runs the functions as local processes (`localstack/process-executor`); when
//! LocalStack is started with `RESIZER_FUNCTION_AWS_ENDPOINT`, their `AWS_ENDPOINT_URL` points
//! here instead of at LocalStack, and this proxy forwards every call to LocalStack, unchanged while
//! no fault is active. On command (an HTTP control API on the same loopback port, see [`proxy`]) it
//! injects faults per service ([`rules`]): added latency, throttling and 5xx answers in each
//! service's own wire format ([`wire`]), connection resets, lost answers, and blackouts that
//! refuse or hang every call for a time. The test harness talks to LocalStack directly.

pub mod proxy;
pub mod rules;
pub mod wire;

pub use proxy::Proxy;
pub use rules::{Call, ErrorKind, Event, Events, Fault, Rule, RuleStatus, ServiceStats, Snapshot};
