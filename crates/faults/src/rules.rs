//! What to inject, where, how often and for how long; and what was injected.
//!
//! A [`Rule`] names a service (the SigV4 scope's service name: `s3`, `dynamodb`, `sqs`, or `*`),
//! optionally some operations and a substring of the target (the S3 path, the DynamoDB table, the
//! SQS queue URL), a [`Fault`], the percentage of matching calls it hits, and how long it lasts.
//! Every matching rule's latency is added; then the first matching rule with another fault that
//! fires decides the call's fate.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One AWS call as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The SigV4 service name (`s3`, `dynamodb`, `sqs`, …), or `other`.
    pub service: String,
    /// The API operation (`PutItem`, `GetObject`, `SendMessage`, …), or `""` when unknown.
    pub operation: String,
    /// The S3 path (`/bucket/key`), the DynamoDB table name(s), or the SQS queue URL.
    pub target: String,
}

/// How an AWS service answers when it is the service's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// "Slow down": S3 503 `SlowDown`, DynamoDB 400 `ProvisionedThroughputExceededException`,
    /// SQS 400 `RequestThrottled`.
    Throttle,
    /// 500: S3 `InternalError`, DynamoDB `InternalServerError`, SQS `InternalFailure`.
    Internal,
    /// 503: `ServiceUnavailable`.
    Unavailable,
}

/// What happens to a call a rule hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Forwarded after `ms` (plus up to `jitter_ms`) more.
    Latency {
        ms: u64,
        #[serde(default)]
        jitter_ms: u64,
    },
    /// Not forwarded: an error answer in the service's own wire format.
    Error { error: ErrorKind },
    /// Not forwarded: the connection is reset (RST) without an answer. With 100 % this is a
    /// blackout in which every connection is refused at once.
    Reset,
    /// Not forwarded: no answer until the rule ends (then a reset), so the caller's own timeouts
    /// decide. With 100 % this is a blackout of an unreachable (black-holed) service.
    Hang,
    /// Forwarded, so it takes effect, but the answer is lost: the connection is reset once the
    /// service has answered. The caller cannot know whether its call happened.
    DropResponse,
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Latency { .. } => "latency",
            Fault::Error { error } => match error {
                ErrorKind::Throttle => "throttle",
                ErrorKind::Internal => "internal",
                ErrorKind::Unavailable => "unavailable",
            },
            Fault::Reset => "reset",
            Fault::Hang => "hang",
            Fault::DropResponse => "drop_response",
        }
    }
}

fn hundred() -> f64 {
    100.0
}

/// A fault to inject, as posted to the control API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// `s3`, `dynamodb`, `sqs`, … or `*`.
    pub service: String,
    /// Only these operations (empty: every operation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// Only calls whose target contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_contains: Option<String>,
    pub fault: Fault,
    /// The share of matching calls hit, 0–100.
    #[serde(default = "hundred")]
    pub percent: f64,
    /// How long the rule lasts from when it is posted (absent: until deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl Rule {
    pub fn new(service: &str, fault: Fault) -> Self {
        Self {
            service: service.to_owned(),
            operations: Vec::new(),
            target_contains: None,
            fault,
            percent: 100.0,
            duration_ms: None,
        }
    }

    pub fn percent(mut self, p: f64) -> Self {
        self.percent = p;
        self
    }

    pub fn lasting(mut self, d: Duration) -> Self {
        self.duration_ms = Some(d.as_millis() as u64);
        self
    }

    pub fn operations(mut self, ops: &[&str]) -> Self {
        self.operations = ops.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn target_contains(mut self, s: &str) -> Self {
        self.target_contains = Some(s.to_owned());
        self
    }

    pub fn matches(&self, call: &Call) -> bool {
        (self.service == "*" || self.service == call.service)
            && (self.operations.is_empty() || self.operations.contains(&call.operation))
            && self
                .target_contains
                .as_deref()
                .is_none_or(|t| call.target.contains(t))
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=100.0).contains(&self.percent) {
            return Err(format!("percent {} is not within 0..=100", self.percent));
        }
        if self.service.is_empty() {
            return Err("service is empty (use \"*\" for every service)".into());
        }
        Ok(())
    }
}

/// A rule as the control API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub id: u64,
    #[serde(flatten)]
    pub rule: Rule,
    /// Calls it matched, and calls it hit.
    pub matched: u64,
    pub hits: u64,
    pub active: bool,
    /// Milliseconds left, for an active rule with a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_ms: Option<u64>,
}

/// Per service: calls seen, forwarded, and faults injected by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStats {
    pub requests: u64,
    /// Forwarded to the local AWS (including those whose answer was then dropped).
    pub forwarded: u64,
    /// Forwarded calls the local AWS did not answer (connection refused, …).
    pub upstream_errors: u64,
    pub injected: BTreeMap<String, u64>,
    pub operations: BTreeMap<String, u64>,
}

/// One call, as the event feed reports it (once its answer, real or injected, is decided).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// Unix milliseconds when the call arrived.
    pub at_ms: u64,
    #[serde(flatten)]
    pub call: Call,
    /// The fault injected, if any (latency included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The status answered (absent for a reset or a hang).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Milliseconds from arrival to the answer's head (or the fault).
    pub ms: u64,
}

/// What the control API's `GET /_faults` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub rules: Vec<RuleStatus>,
    pub services: BTreeMap<String, ServiceStats>,
    /// The sequence number the next event will get.
    pub next_event: u64,
}

/// A page of the event feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Events {
    pub events: Vec<Event>,
    /// Where the next page starts.
    pub next: u64,
    /// Events that fell out of the buffer before they were read.
    pub missed: u64,
}

/// The fate of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub delay: Duration,
    pub fault: Option<Fault>,
    /// The rules' end, for a hang.
    pub until: Option<Instant>,
    /// The name recorded in stats and events.
    pub label: Option<String>,
}

struct Active {
    id: u64,
    rule: Rule,
    until: Option<Instant>,
    matched: u64,
    hits: u64,
}

/// How many events the feed keeps.
pub const EVENT_BUFFER: usize = 20_000;

/// The proxy's mutable state: rules, counters, the event feed.
pub struct Table {
    rules: Vec<Active>,
    next_id: u64,
    services: BTreeMap<String, ServiceStats>,
    events: VecDeque<Event>,
    next_seq: u64,
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    pub fn new() -> Self {
        Self {
            rules: Vec::new(),
            next_id: 1,
            services: BTreeMap::new(),
            events: VecDeque::with_capacity(1024),
            next_seq: 0,
        }
    }

    pub fn add(&mut self, rule: Rule, now: Instant) -> Result<u64, String> {
        rule.validate()?;
        let id = self.next_id;
        self.next_id += 1;
        let until = rule.duration_ms.map(|ms| now + Duration::from_millis(ms));
        self.rules.push(Active {
            id,
            rule,
            until,
            matched: 0,
            hits: 0,
        });
        Ok(id)
    }

    /// Removes one rule (`Some(id)`) or all; returns how many.
    pub fn remove(&mut self, id: Option<u64>) -> usize {
        let before = self.rules.len();
        match id {
            Some(id) => self.rules.retain(|r| r.id != id),
            None => self.rules.clear(),
        }
        before - self.rules.len()
    }

    /// Decides what happens to `call`, with `roll` giving a uniform number in [0, 100) per rule.
    pub fn decide(&mut self, call: &Call, now: Instant, mut roll: impl FnMut() -> f64) -> Decision {
        let stats = self.services.entry(call.service.clone()).or_default();
        stats.requests += 1;
        *stats.operations.entry(call.operation.clone()).or_default() += 1;

        let mut d = Decision {
            delay: Duration::ZERO,
            fault: None,
            until: None,
            label: None,
        };
        let mut labels: Vec<&'static str> = Vec::new();
        for r in &mut self.rules {
            if r.until.is_some_and(|u| u <= now) || !r.rule.matches(call) {
                continue;
            }
            r.matched += 1;
            let terminal = !matches!(r.rule.fault, Fault::Latency { .. });
            if terminal && d.fault.is_some() {
                continue;
            }
            if roll() >= r.rule.percent {
                continue;
            }
            r.hits += 1;
            labels.push(r.rule.fault.name());
            match &r.rule.fault {
                Fault::Latency { ms, jitter_ms } => {
                    let jitter = if *jitter_ms > 0 {
                        (roll() / 100.0 * *jitter_ms as f64) as u64
                    } else {
                        0
                    };
                    d.delay += Duration::from_millis(ms + jitter);
                }
                other => {
                    d.fault = Some(other.clone());
                    d.until = r.until;
                }
            }
        }
        for l in &labels {
            *stats.injected.entry((*l).to_owned()).or_default() += 1;
        }
        if !labels.is_empty() {
            d.label = Some(labels.join("+"));
        }
        d
    }

    pub fn forwarded(&mut self, service: &str, ok: bool) {
        let s = self.services.entry(service.to_owned()).or_default();
        s.forwarded += 1;
        if !ok {
            s.upstream_errors += 1;
        }
    }

    pub fn record(&mut self, mut event: Event) {
        event.seq = self.next_seq;
        self.next_seq += 1;
        if self.events.len() == EVENT_BUFFER {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Events from `after` on (at most `limit`).
    pub fn events(&self, after: u64, limit: usize) -> Events {
        let first = self.events.front().map_or(self.next_seq, |e| e.seq);
        let missed = first.saturating_sub(after);
        let events: Vec<Event> = self
            .events
            .iter()
            .filter(|e| e.seq >= after)
            .take(limit)
            .cloned()
            .collect();
        let next = events.last().map_or(after.max(first), |e| e.seq + 1);
        Events {
            events,
            next,
            missed,
        }
    }

    pub fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot {
            rules: self
                .rules
                .iter()
                .map(|r| {
                    let active = r.until.is_none_or(|u| u > now);
                    RuleStatus {
                        id: r.id,
                        rule: r.rule.clone(),
                        matched: r.matched,
                        hits: r.hits,
                        active,
                        remaining_ms: r
                            .until
                            .filter(|_| active)
                            .map(|u| (u - now).as_millis() as u64),
                    }
                })
                .collect(),
            services: self.services.clone(),
            next_event: self.next_seq,
        }
    }
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(service: &str, op: &str, target: &str) -> Call {
        Call {
            service: service.into(),
            operation: op.into(),
            target: target.into(),
        }
    }

    #[test]
    fn rules_match_service_operation_and_target() {
        let r = Rule::new(
            "dynamodb",
            Fault::Error {
                error: ErrorKind::Throttle,
            },
        )
        .operations(&["Query"])
        .target_contains("Usage");
        assert!(r.matches(&call("dynamodb", "Query", "stack-UsageTable-1")));
        assert!(!r.matches(&call("dynamodb", "PutItem", "stack-UsageTable-1")));
        assert!(!r.matches(&call("dynamodb", "Query", "stack-JobsTable-1")));
        assert!(!r.matches(&call("s3", "Query", "Usage")));
        assert!(Rule::new("*", Fault::Reset).matches(&call("sqs", "SendMessage", "q")));
    }

    #[test]
    fn latency_adds_up_and_the_first_terminal_fault_wins() {
        let mut t = Table::new();
        let now = Instant::now();
        t.add(
            Rule::new(
                "s3",
                Fault::Latency {
                    ms: 100,
                    jitter_ms: 0,
                },
            ),
            now,
        )
        .unwrap();
        t.add(Rule::new("s3", Fault::Reset), now).unwrap();
        t.add(Rule::new("s3", Fault::Hang), now).unwrap();
        let d = t.decide(&call("s3", "GetObject", "/b/k"), now, || 0.0);
        assert_eq!(d.delay, Duration::from_millis(100));
        assert_eq!(d.fault, Some(Fault::Reset));
        assert_eq!(d.label.as_deref(), Some("latency+reset"));
        let snap = t.snapshot(now);
        assert_eq!(snap.services["s3"].injected["reset"], 1);
        assert_eq!(snap.rules[2].hits, 0, "the hang never fired");
    }

    #[test]
    fn percent_and_duration_bound_a_rule() {
        let mut t = Table::new();
        let now = Instant::now();
        t.add(
            Rule::new(
                "sqs",
                Fault::Error {
                    error: ErrorKind::Unavailable,
                },
            )
            .percent(20.0)
            .lasting(Duration::from_secs(1)),
            now,
        )
        .unwrap();
        let c = call("sqs", "SendMessage", "q");
        assert!(t.decide(&c, now, || 19.9).fault.is_some());
        assert!(t.decide(&c, now, || 20.0).fault.is_none());
        assert!(
            t.decide(&c, now + Duration::from_secs(1), || 0.0)
                .fault
                .is_none()
        );
        let snap = t.snapshot(now + Duration::from_secs(2));
        assert_eq!(
            (
                snap.rules[0].matched,
                snap.rules[0].hits,
                snap.rules[0].active
            ),
            (2, 1, false)
        );
        assert!(
            t.add(Rule::new("sqs", Fault::Reset).percent(101.0), now)
                .is_err()
        );
    }

    #[test]
    fn the_event_feed_pages_and_reports_what_it_dropped() {
        let mut t = Table::new();
        for i in 0..(EVENT_BUFFER as u64 + 10) {
            t.record(Event {
                seq: 0,
                at_ms: i,
                call: call("s3", "GetObject", "/b/k"),
                fault: None,
                status: Some(200),
                ms: 1,
            });
        }
        let page = t.events(0, 5);
        assert_eq!(page.missed, 10);
        assert_eq!(page.events[0].seq, 10);
        assert_eq!(page.next, 15);
        let end = t.events(EVENT_BUFFER as u64 + 10, 5);
        assert!(end.events.is_empty());
        assert_eq!(end.next, EVENT_BUFFER as u64 + 10);
    }

    #[test]
    fn rules_round_trip_as_json() {
        let r: Rule = serde_json::from_str(
            r#"{"service":"s3","fault":{"kind":"error","error":"throttle"},"percent":20,"duration_ms":300000}"#,
        )
        .unwrap();
        assert_eq!(
            r.fault,
            Fault::Error {
                error: ErrorKind::Throttle
            }
        );
        let back: Rule = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let r: Rule =
            serde_json::from_str(r#"{"service":"dynamodb","fault":{"kind":"hang"}}"#).unwrap();
        assert_eq!((r.percent, r.duration_ms), (100.0, None));
    }
}
