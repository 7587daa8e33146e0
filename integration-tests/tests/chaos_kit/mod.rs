//! The chaos suite's kit: the fault proxy's control client, the function processes of this
//! checkout's LocalStack (to kill them), a steady load through the api function's URL, and the
//! invariants every scenario ends with.
//!
//! Invariants, checked on the scenario's own customers once the faults are over:
//! - every accepted job (202) ends, and ends `done` (every input is a valid image, so a `failed`
//!   job is one that could have succeeded);
//! - each has exactly one raw usage item (read through the `UsageLog` port), and no other usage
//!   item names one of the scenario's customers;
//! - the rollups, after a run of the deployed aggregator, equal the jobs (hour, day and month);
//! - nothing is left in staging under the customers' `inline/` prefixes;
//! - no job record exists that the client was not told about, unless it ended (reported apart).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resizer_core::job::{Job, JobId, JobStatus};
use resizer_core::usage::{HourKey, Period, Totals, UsageRecord};
use resizer_faults::{Events, Rule, Snapshot};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::common::{R, State};

/// One scenario at a time: faults and kills are global to the local AWS.
pub static SERIAL: Mutex<()> = Mutex::const_new(());

/// The checkout's root (for `.local/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn env_or_file(var: &str, file: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .or_else(|| std::fs::read_to_string(root().join(file)).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A duration from the environment (seconds), scaled by `CHAOS_SCALE` (default 1).
pub fn secs(var: &str, default: f64) -> Duration {
    let base: f64 = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs_f64(base * scale())
}

pub fn scale() -> f64 {
    std::env::var("CHAOS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0)
}

pub fn num(var: &str, default: f64) -> f64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---- the fault proxy ------------------------------------------------------------------------

/// The fault proxy's control API.
#[derive(Clone)]
pub struct Faults {
    pub base: String,
    http: reqwest::Client,
}

impl Faults {
    /// The proxy this checkout's functions call: `RESIZER_FAULT_PROXY_URL` (exported by
    /// `localstack/with-local-aws.sh`), else `.local/localstack/function-endpoint` when it is not
    /// LocalStack itself. `None` when the functions do not go through a proxy.
    pub async fn connect() -> Option<Self> {
        let base = env_or_file(
            "RESIZER_FAULT_PROXY_URL",
            ".local/localstack/function-endpoint",
        )?;
        let aws = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        if base.trim_end_matches('/') == aws.trim_end_matches('/') {
            return None;
        }
        let f = Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        f.http
            .get(format!("{}/_faults", f.base))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        Some(f)
    }

    pub async fn add(&self, rule: &Rule) -> u64 {
        let v: Value = self
            .http
            .post(format!("{}/_faults/rules", self.base))
            .json(rule)
            .send()
            .await
            .expect("the fault proxy answers")
            .json()
            .await
            .expect("JSON");
        v["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("rule refused: {v}"))
    }

    pub async fn clear(&self) {
        self.http
            .delete(format!("{}/_faults/rules", self.base))
            .send()
            .await
            .expect("the fault proxy answers");
    }

    pub async fn snapshot(&self) -> Snapshot {
        self.http
            .get(format!("{}/_faults", self.base))
            .send()
            .await
            .expect("the fault proxy answers")
            .json()
            .await
            .expect("a snapshot")
    }

    pub async fn events(&self, after: u64) -> Events {
        self.http
            .get(format!(
                "{}/_faults/events?after={after}&limit=10000",
                self.base
            ))
            .send()
            .await
            .expect("the fault proxy answers")
            .json()
            .await
            .expect("events")
    }

    /// Clears every rule when dropped (a failed assertion must not leave a fault behind).
    pub fn guard(&self) -> ClearOnDrop {
        ClearOnDrop(self.base.clone())
    }
}

/// Clears the proxy's rules on drop, with a plain blocking request.
pub struct ClearOnDrop(String);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        let Some(addr) = self.0.strip_prefix("http://") else {
            return;
        };
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "DELETE /_faults/rules HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
        }
    }
}

/// Injected faults per service and kind, between two snapshots.
pub fn injected_between(
    before: &Snapshot,
    after: &Snapshot,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (svc, s) in &after.services {
        let prev = before.services.get(svc);
        let mut kinds = BTreeMap::new();
        let requests = s.requests - prev.map_or(0, |p| p.requests);
        kinds.insert("requests".to_owned(), requests);
        for (k, n) in &s.injected {
            let d = n - prev.and_then(|p| p.injected.get(k)).copied().unwrap_or(0);
            if d > 0 {
                kinds.insert(k.clone(), d);
            }
        }
        if requests > 0 {
            out.insert(svc.clone(), kinds);
        }
    }
    out
}

// ---- function processes ---------------------------------------------------------------------

/// The function processes of this checkout's LocalStack.
pub struct Processes {
    pub localstack: u32,
}

impl Processes {
    /// `RESIZER_LOCALSTACK_PID`, else `.local/localstack/localstack.pid`, if that process runs.
    pub fn find() -> Option<Self> {
        let pid: u32 = env_or_file("RESIZER_LOCALSTACK_PID", ".local/localstack/localstack.pid")?
            .parse()
            .ok()?;
        std::path::Path::new(&format!("/proc/{pid}"))
            .exists()
            .then_some(Self { localstack: pid })
    }

    fn ppid(pid: u32) -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    fn descends(&self, mut pid: u32) -> bool {
        for _ in 0..16 {
            match Self::ppid(pid) {
                Some(p) if p == self.localstack => return true,
                Some(p) if p > 1 => pid = p,
                _ => return false,
            }
        }
        false
    }

    /// Live processes of `function` (its `AWS_LAMBDA_FUNCTION_NAME`) in the tests' region
    /// (`make test` deploys the same stack in a second region) started by our LocalStack.
    pub fn of(&self, function: &str) -> Vec<u32> {
        let want = format!("AWS_LAMBDA_FUNCTION_NAME={function}");
        let region = std::env::var("AWS_REGION")
            .ok()
            .map(|r| format!("AWS_REGION={r}"));
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let mut vars = env.split(|b| *b == 0);
            let named = vars.clone().any(|v| v == want.as_bytes());
            let here = region
                .as_ref()
                .is_none_or(|r| vars.any(|v| v == r.as_bytes()));
            if named && here && self.descends(pid) {
                out.push(pid);
            }
        }
        out
    }

    /// CPU ticks (user + system) a process has used.
    pub fn cpu_ticks(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }

    /// Of `function`'s processes, those that used CPU during `window`.
    pub async fn busy(&self, function: &str, window: Duration) -> Vec<u32> {
        let before: Vec<(u32, u64)> = self
            .of(function)
            .into_iter()
            .filter_map(|p| Some((p, Self::cpu_ticks(p)?)))
            .collect();
        tokio::time::sleep(window).await;
        before
            .into_iter()
            .filter(|(p, t)| Self::cpu_ticks(*p).is_some_and(|now| now > *t))
            .map(|(p, _)| p)
            .collect()
    }

    pub fn sigkill(pid: u32) -> bool {
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }
}

// ---- load -----------------------------------------------------------------------------------

/// A customer of a scenario: its id, its key, and the image and transform it submits.
#[derive(Clone)]
pub struct Tenant {
    pub name: String,
    pub customer_id: String,
    pub key: String,
    pub image: Arc<Vec<u8>>,
    pub content_type: &'static str,
    pub query: String,
}

pub async fn tenant(state: &State, name: &str, image: Vec<u8>, query: &str) -> Tenant {
    let (c, key) = crate::common::customer(state, None).await;
    Tenant {
        name: name.to_owned(),
        customer_id: c.customer_id,
        key,
        image: Arc::new(image),
        content_type: "image/jpeg",
        query: query.to_owned(),
    }
}

/// What one submission got.
#[derive(Debug, Clone)]
pub enum Answer {
    Accepted(JobId),
    Refused {
        status: u16,
        code: String,
    },
    /// No HTTP answer (the client's own timeout, a connection error).
    Unanswered(String),
}

#[derive(Debug, Clone)]
pub struct Submission {
    pub tenant: String,
    /// From the scenario's start.
    pub at: Duration,
    pub took: Duration,
    pub answer: Answer,
}

impl Submission {
    /// Submits one job for `t` now, stamped from the scenario's start `t0`.
    async fn of(client: &Client, t0: Instant, t: &Tenant) -> Self {
        let at = t0.elapsed();
        let (took, answer) = client.submit(t).await;
        Self {
            tenant: t.name.clone(),
            at,
            took,
            answer,
        }
    }
}

/// Submits through the api function's URL, as `common::deployed` does, but keeps every failure.
#[derive(Clone)]
pub struct Client {
    target: String,
    host: String,
    http: reqwest::Client,
}

/// How long a client waits for the API (beyond API Gateway's 30 s nothing can answer).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    pub fn new(state: &State) -> Self {
        let (endpoint, host) = crate::common::function_url_route(state);
        Self {
            target: endpoint,
            host,
            http: reqwest::Client::builder()
                .timeout(CLIENT_TIMEOUT)
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
        }
    }

    pub async fn submit(&self, t: &Tenant) -> (Duration, Answer) {
        let started = Instant::now();
        let r = self
            .http
            .post(format!("{}/v1/jobs?{}", self.target, t.query))
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", t.key))
            .header("content-type", t.content_type)
            .body(t.image.as_ref().clone())
            .send()
            .await;
        let answer = match r {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                if status == 202 || status == 200 {
                    match v["job_id"].as_str().and_then(JobId::parse) {
                        Some(id) => Answer::Accepted(id),
                        None => Answer::Refused {
                            status,
                            code: format!("no job_id in {v}"),
                        },
                    }
                } else {
                    Answer::Refused {
                        status,
                        code: v["error"]["code"].as_str().unwrap_or("?").to_owned(),
                    }
                }
            }
            Err(e) => Answer::Unanswered(if e.is_timeout() {
                "client timeout".into()
            } else {
                short_error(&e)
            }),
        };
        (started.elapsed(), answer)
    }
}

fn short_error(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s.chars().take(160).collect()
}

/// A uniform random number in `[lo, hi)`.
pub fn uniform(lo: f64, hi: f64) -> f64 {
    let r = (uuid::Uuid::new_v4().as_u128() >> 64) as u64 as f64 / u64::MAX as f64;
    lo + (hi - lo) * r
}

/// A steady load: each tenant submits at its rate until stopped.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Submission>>>,
}

impl Load {
    /// Starts `rate` submissions per second for each tenant, timed from `t0`.
    pub fn start(client: &Client, t0: Instant, tenants: &[(Tenant, f64)]) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (t, rate) in tenants {
            let (client, t, rate, stop) = (client.clone(), t.clone(), *rate, stop.clone());
            tasks.push(tokio::spawn(async move {
                let interval = Duration::from_secs_f64(1.0 / rate);
                let start = Instant::now();
                let mut inflight = Vec::new();
                for i in 0u32.. {
                    tokio::time::sleep_until((start + interval * i).into()).await;
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let (client, t) = (client.clone(), t.clone());
                    inflight.push(tokio::spawn(async move {
                        Submission::of(&client, t0, &t).await
                    }));
                }
                let mut out = Vec::new();
                for h in inflight {
                    out.push(h.await.expect("a submission task"));
                }
                out
            }));
        }
        Self { stop, tasks }
    }

    /// Stops submitting and waits for the answers of those in flight.
    pub async fn stop(self) -> Vec<Submission> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut out = Vec::new();
        for t in self.tasks {
            out.extend(t.await.expect("a load task"));
        }
        out.sort_by_key(|s| s.at);
        out
    }
}

/// Submits `n` jobs for `t` at once (at most `concurrency` in flight): a backlog.
pub async fn burst(
    client: &Client,
    t0: Instant,
    t: &Tenant,
    n: usize,
    concurrency: usize,
) -> Vec<Submission> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut hs = Vec::new();
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (client, t) = (client.clone(), t.clone());
        hs.push(tokio::spawn(async move {
            let _p = permit;
            Submission::of(&client, t0, &t).await
        }));
    }
    let mut out = Vec::new();
    for h in hs {
        out.push(h.await.unwrap());
    }
    out
}

pub fn accepted(subs: &[Submission]) -> Vec<JobId> {
    subs.iter()
        .filter_map(|s| match &s.answer {
            Answer::Accepted(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

// ---- invariants -----------------------------------------------------------------------------

/// A phase of a scenario, on its clock.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub from: Duration,
    pub to: Duration,
}

/// What a scenario checks and reports.
pub struct Check<'a> {
    pub state: &'a State,
    pub tenants: &'a [Tenant],
    pub subs: &'a [Submission],
    /// Accepted jobs not in `subs` (e.g. a warm-up).
    pub extra_jobs: Vec<JobId>,
    /// How long to wait for every accepted job to end.
    pub settle: Duration,
    pub t0: Instant,
    pub t0_wall: OffsetDateTime,
    pub phases: Vec<Phase>,
}

#[derive(Default)]
pub struct Verdict {
    pub violations: Vec<String>,
    pub lines: Vec<String>,
    pub jobs: Vec<Job>,
    pub latency_by_phase: BTreeMap<String, Vec<f64>>,
}

impl Verdict {
    pub fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }

    pub fn violation(&mut self, s: impl Into<String>) {
        let s = s.into();
        self.lines.push(format!("**violation**: {s}"));
        self.violations.push(s);
    }
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn summary_ms(v: &[f64]) -> String {
    if v.is_empty() {
        return "no jobs".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "n={} p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        s.len(),
        pct(&s, 50.0),
        pct(&s, 95.0),
        pct(&s, 99.0),
        s[s.len() - 1]
    )
}

fn phase_of(phases: &[Phase], at: Duration) -> &'static str {
    phases
        .iter()
        .find(|p| at >= p.from && at < p.to)
        .map_or("other", |p| p.name)
}

/// Waits until every job in `ids` is terminal or `limit` passes; returns the jobs as last read.
pub async fn settle(state: &State, ids: &[JobId], limit: Duration) -> Vec<Job> {
    let deadline = Instant::now() + limit;
    let mut done: HashMap<JobId, Job> = HashMap::new();
    loop {
        let mut pending = 0;
        for id in ids {
            if done.contains_key(id) {
                continue;
            }
            match state.app.stores.jobs.get(id).await {
                Ok(Some(j)) if j.status.is_terminal() => {
                    done.insert(id.clone(), j);
                }
                Ok(Some(j)) => {
                    pending += 1;
                    if Instant::now() >= deadline {
                        done.insert(id.clone(), j);
                    }
                }
                _ => pending += 1,
            }
        }
        if pending == 0 || Instant::now() >= deadline {
            return ids.iter().filter_map(|i| done.get(i).cloned()).collect();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Expected rollup totals from the jobs alone (cpu_ms is only in the usage records).
fn totals_of_jobs<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Totals {
    let mut t = Totals::default();
    for j in jobs {
        t.jobs += 1;
        match j.status {
            JobStatus::Done => t.done += 1,
            JobStatus::Failed => t.failed += 1,
            _ => {}
        }
        t.bytes_in += j.input.bytes;
        t.pixels_in += u64::from(j.input.width) * u64::from(j.input.height);
        if let (JobStatus::Done, Some(r)) = (j.status, &j.result) {
            t.bytes_out += r.bytes;
            t.pixels_out += u64::from(r.width) * u64::from(r.height);
        }
    }
    t
}

fn without_cpu(mut t: Totals) -> Totals {
    t.cpu_ms = 0;
    t
}

/// Every job record of `customers` (a scan: the local tables are small).
async fn jobs_of_customers(
    state: &State,
    customers: &BTreeSet<String>,
) -> R<Vec<(String, String, String)>> {
    let ddb = state.dynamodb();
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = ddb
            .scan()
            .table_name(&state.resources.jobs_table)
            .projection_expression("job_id, customer_id, #s")
            .expression_attribute_names("#s", "status")
            .set_exclusive_start_key(start.take())
            .send()
            .await?;
        for item in page.items() {
            let s = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            if customers.contains(&s("customer_id")) {
                out.push((s("job_id"), s("customer_id"), s("status")));
            }
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(out),
        }
    }
}

impl Check<'_> {
    /// Checks every invariant; returns the verdict (violations and report lines).
    pub async fn run(self) -> Verdict {
        let mut v = Verdict::default();
        let state = self.state;
        let customers: BTreeSet<String> =
            self.tenants.iter().map(|t| t.customer_id.clone()).collect();
        let name_of: HashMap<String, String> = self
            .tenants
            .iter()
            .map(|t| (t.customer_id.clone(), t.name.clone()))
            .collect();

        // Submissions, per phase.
        let mut by_phase: BTreeMap<&str, Vec<&Submission>> = BTreeMap::new();
        for s in self.subs {
            by_phase
                .entry(phase_of(&self.phases, s.at))
                .or_default()
                .push(s);
        }
        for p in self.phases.iter().map(|p| p.name).chain(["other"]) {
            let Some(subs) = by_phase.get(p) else {
                continue;
            };
            let mut answers: BTreeMap<String, usize> = BTreeMap::new();
            for s in subs {
                let k = match &s.answer {
                    Answer::Accepted(_) => "202".to_owned(),
                    Answer::Refused { status, code } => format!("{status} {code}"),
                    Answer::Unanswered(e) => format!("no answer ({e})"),
                };
                *answers.entry(k).or_default() += 1;
            }
            let took: Vec<f64> = subs.iter().map(|s| s.took.as_secs_f64() * 1000.0).collect();
            v.line(format!(
                "submissions {p}: {} — {answers:?}; answered in {}",
                subs.len(),
                summary_ms(&took)
            ));
        }

        // Every accepted job ends, done.
        let mut ids = accepted(self.subs);
        ids.extend(self.extra_jobs.iter().cloned());
        let settle_start = Instant::now();
        let jobs = settle(state, &ids, self.settle).await;
        v.line(format!(
            "jobs accepted: {}; all ended {:.0} s after the checks began",
            ids.len(),
            settle_start.elapsed().as_secs_f64()
        ));
        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        for j in &jobs {
            let k = match (&j.status, &j.error) {
                (JobStatus::Failed, Some(e)) => format!("failed {}", e.code),
                (s, _) => s.to_string(),
            };
            *statuses.entry(k).or_default() += 1;
        }
        let redelivered = jobs.iter().filter(|j| j.attempts > 1).count();
        let max_attempts = jobs.iter().map(|j| j.attempts).max().unwrap_or(0);
        v.line(format!(
            "job outcomes: {statuses:?}; claimed more than once: {redelivered} (most claims: {max_attempts})"
        ));
        if jobs.len() != ids.len() {
            v.violation(format!(
                "{} accepted jobs have no record",
                ids.len() - jobs.len()
            ));
        }
        let unfinished: Vec<String> = jobs
            .iter()
            .filter(|j| !j.status.is_terminal())
            .map(|j| format!("{} {} (claims {})", j.job_id, j.status, j.attempts))
            .collect();
        if !unfinished.is_empty() {
            v.violation(format!(
                "{} accepted jobs did not end within {:?}: {:?}",
                unfinished.len(),
                self.settle,
                &unfinished[..unfinished.len().min(5)]
            ));
        }
        let failed: Vec<String> = jobs
            .iter()
            .filter(|j| j.status == JobStatus::Failed)
            .map(|j| {
                let e = j.error.as_ref();
                format!(
                    "{} {} ({}; claims {})",
                    j.job_id,
                    e.map_or("?", |e| e.code.as_str()),
                    e.map_or("", |e| e.message.as_str()),
                    j.attempts
                )
            })
            .collect();
        if !failed.is_empty() {
            v.violation(format!(
                "{} jobs failed that could have succeeded (valid images): {:?}",
                failed.len(),
                &failed[..failed.len().min(3)]
            ));
        }

        // Latency (the service's own timestamps), per phase of creation.
        for j in jobs.iter().filter(|j| j.status.is_terminal()) {
            let at = (j.created_at - self.t0_wall).as_seconds_f64().max(0.0);
            let phase = phase_of(&self.phases, Duration::from_secs_f64(at));
            let tenant = name_of.get(&j.customer_id).cloned().unwrap_or_default();
            let ms = (j.updated_at - j.created_at).as_seconds_f64() * 1000.0;
            v.latency_by_phase
                .entry(phase.to_owned())
                .or_default()
                .push(ms);
            v.latency_by_phase
                .entry(format!("{phase}/{tenant}"))
                .or_default()
                .push(ms);
        }
        for p in self.phases.iter().map(|p| p.name).chain(["other"]) {
            if let Some(l) = v.latency_by_phase.get(p).cloned() {
                v.line(format!(
                    "submit→done of jobs created {p}: {}",
                    summary_ms(&l)
                ));
            }
        }

        // Exactly one usage item per job, none for anything else.
        let records = match usage_of(state, &customers, &jobs).await {
            Ok(r) => r,
            Err(e) => {
                v.violation(e);
                Vec::new()
            }
        };
        let mut per_job: HashMap<JobId, usize> = HashMap::new();
        for r in &records {
            *per_job.entry(r.job_id.clone()).or_default() += 1;
        }
        let terminal: Vec<&Job> = jobs.iter().filter(|j| j.status.is_terminal()).collect();
        let missing = terminal
            .iter()
            .filter(|j| !per_job.contains_key(&j.job_id))
            .count();
        let doubled = per_job.values().filter(|n| **n > 1).count();
        let known: BTreeSet<&JobId> = ids.iter().collect();
        let orphans: Vec<&JobId> = per_job.keys().filter(|id| !known.contains(id)).collect();
        v.line(format!(
            "usage items: {} for {} ended jobs; missing {missing}, duplicated {doubled}, for jobs the client was not told about {}",
            records.len(),
            terminal.len(),
            orphans.len()
        ));
        if missing > 0 || doubled > 0 {
            v.violation(format!(
                "usage items: {missing} missing, {doubled} duplicated"
            ));
        }

        // Rollups equal the jobs, once their hours are closed by the deployed slice function.
        match close_hours_of(state, &jobs).await {
            Err(e) => v.violation(format!("closing the hours: {e}")),
            Ok(items_read) => {
                let (mismatches, compared) =
                    compare_rollups(state, &customers, &jobs, &records).await;
                v.line(format!(
                    "rollups after closing the hours ({items_read} items read): {compared} compared, {} differ",
                    mismatches.len()
                ));
                if !mismatches.is_empty() {
                    v.violation(format!(
                        "rollups differ from the jobs: {:?}",
                        &mismatches[..mismatches.len().min(4)]
                    ));
                }
            }
        }

        // Nothing left in staging.
        let mut left = 0;
        for c in &customers {
            match state
                .s3()
                .list_objects_v2()
                .bucket(&state.resources.staging_bucket)
                .prefix(format!("inline/{c}/"))
                .send()
                .await
            {
                Ok(out) => left += out.key_count().unwrap_or(0),
                Err(e) => v.violation(format!("cannot list staging: {e}")),
            }
        }
        v.line(format!("staged inputs left: {left}"));
        if left > 0 {
            v.violation(format!("{left} staged inputs left behind"));
        }

        // Job records the client was never told about.
        match jobs_of_customers(state, &customers).await {
            Err(e) => v.violation(format!("cannot scan jobs: {e}")),
            Ok(all) => {
                let known: BTreeSet<&str> = ids.iter().map(JobId::as_str).collect();
                let unknown: Vec<&(String, String, String)> = all
                    .iter()
                    .filter(|(id, _, _)| !known.contains(id.as_str()))
                    .collect();
                let open: Vec<&&(String, String, String)> = unknown
                    .iter()
                    .filter(|(_, _, s)| s != "done" && s != "failed")
                    .collect();
                v.line(format!(
                    "job records the client was not told about: {} ({} of them not ended)",
                    unknown.len(),
                    open.len()
                ));
                if !open.is_empty() {
                    v.violation(format!("{} unacknowledged jobs never ended", open.len()));
                }
            }
        }
        v.jobs = jobs;
        v
    }
}

/// Every hour from a job's creation to its last update: where its usage item can be (it is
/// metered in the hour its outcome was recorded).
fn hours_of(jobs: &[Job]) -> BTreeSet<HourKey> {
    let mut hours = BTreeSet::new();
    for j in jobs {
        let mut h = HourKey::of(j.created_at);
        while h <= HourKey::of(j.updated_at) {
            hours.insert(h);
            h = h.next();
        }
    }
    hours
}

/// Closes every hour `jobs` may have usage in, through the deployed aggregate-slice function, as
/// the schedule closes an hour once it has ended (here early: every job has ended); returns the
/// items read.
pub async fn close_hours_of(state: &State, jobs: &[Job]) -> R<u64> {
    let mut items = 0;
    for h in hours_of(jobs) {
        items += state.app.close_hour(h).await?.items_read;
    }
    Ok(items)
}

/// The raw usage records of `customers` in the hours their `jobs` can have usage in.
pub async fn usage_of(
    state: &State,
    customers: &BTreeSet<String>,
    jobs: &[Job],
) -> Result<Vec<UsageRecord>, String> {
    let hours = hours_of(jobs);
    let mut records = Vec::new();
    for h in &hours {
        let rs = state
            .app
            .stores
            .usage_log
            .records_of_hour(*h)
            .await
            .map_err(|e| format!("cannot read usage of {h}: {e}"))?;
        records.extend(
            rs.into_iter()
                .filter(|r| customers.contains(&r.customer_id)),
        );
    }
    Ok(records)
}

/// Compares the stored rollups (hour, day, month) of `customers` with the sums of their ended
/// `jobs` and of their usage `records`; returns the differences and how many rollups it compared.
pub async fn compare_rollups(
    state: &State,
    customers: &BTreeSet<String>,
    jobs: &[Job],
    records: &[UsageRecord],
) -> (Vec<String>, usize) {
    let mut expected: BTreeMap<(String, Period), (Totals, Totals)> = BTreeMap::new();
    for j in jobs.iter().filter(|j| j.status.is_terminal()) {
        // Metered in the hour the outcome was recorded: the job's last update.
        for p in HourKey::of(j.updated_at).periods() {
            let e = expected.entry((j.customer_id.clone(), p)).or_default();
            e.0.merge(&totals_of_jobs([j]));
        }
    }
    for r in records {
        for p in r.hour().periods() {
            let e = expected.entry((r.customer_id.clone(), p)).or_default();
            e.1.add_record(r);
        }
    }
    let mut mismatches = Vec::new();
    for ((c, p), (from_jobs, from_usage)) in &expected {
        if !customers.contains(c) {
            continue;
        }
        match state.app.stores.rollups.get(c, *p).await {
            Ok(Some(got)) => {
                if without_cpu(got) != *from_jobs || got != *from_usage {
                    mismatches.push(format!("{c} {p}: rollup {got:?}, jobs {from_jobs:?}"));
                }
            }
            Ok(None) => mismatches.push(format!("{c} {p}: no rollup")),
            Err(e) => mismatches.push(format!("{c} {p}: {e}")),
        }
    }
    (mismatches, expected.len())
}

// ---- the report -----------------------------------------------------------------------------

/// A scenario's report: Markdown, printed and kept in `.local/chaos/<name>.md`.
pub struct Report {
    pub name: String,
    pub out: String,
}

impl Report {
    pub fn new(name: &str, title: &str) -> Self {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {title}\n\nRun {} on commit {}, `CHAOS_SCALE={}`.\n",
            OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            git_head(),
            scale()
        );
        Self {
            name: name.to_owned(),
            out,
        }
    }

    pub fn line(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.out, "- {}", s.as_ref());
    }

    pub fn verdict(&mut self, v: &Verdict) {
        for l in &v.lines {
            self.line(l);
        }
        let _ = writeln!(
            self.out,
            "\n**{}**\n",
            if v.violations.is_empty() {
                "PASS: every invariant held".to_owned()
            } else {
                format!("FAIL: {} invariants violated", v.violations.len())
            }
        );
    }

    /// Prints and saves the report; panics with the violations if there are any.
    pub fn finish(self, v: &Verdict) {
        println!("\n{}", self.out);
        let dir = root().join(".local/chaos");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{}.md", self.name)), &self.out);
        assert!(
            v.violations.is_empty(),
            "{}: {} invariants violated:\n- {}\n(report: .local/chaos/{}.md)",
            self.name,
            v.violations.len(),
            v.violations.join("\n- "),
            self.name
        );
    }
}

fn git_head() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A job's life as the service recorded it (created → ended), in seconds from a common origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Life {
    pub from: f64,
    pub to: f64,
}

impl Life {
    pub fn of(j: &Job, origin: OffsetDateTime) -> Life {
        Life {
            from: (j.created_at - origin).as_seconds_f64(),
            to: (j.updated_at - origin).as_seconds_f64(),
        }
    }

    fn overlaps(&self, (a, b): (f64, f64)) -> bool {
        self.from < b && self.to > a
    }
}

/// Stalls of the whole stack: spans of at least `min_gap` seconds in which some job was open and no
/// job of any customer ended. A customer cannot cause one by sending work (its own jobs would end);
/// a 2-core local stack has them now and then (docs/reliability.md, the flood scenario).
pub fn stalls(lives: &[Life], min_gap: f64) -> Vec<(f64, f64)> {
    let mut ends: Vec<f64> = lives.iter().map(|l| l.to).collect();
    ends.sort_by(f64::total_cmp);
    let mut out = Vec::new();
    for w in ends.windows(2) {
        let (a, b) = (w[0], w[1]);
        // Open throughout: created before the span began, ended at or after its end.
        let open = lives.iter().any(|l| l.from <= a && l.to >= b);
        if b - a >= min_gap && open {
            out.push((a, b));
        }
    }
    out
}

/// Whether `life` overlaps one of `stalls`.
pub fn in_stall(life: &Life, stalls: &[(f64, f64)]) -> bool {
    stalls.iter().any(|s| life.overlaps(*s))
}

/// For each life in `waiting`: how many of `served` ended while it waited (after it was created and
/// before it ended). For another customer's job behind a flooder, that is the flooder's work it
/// waited for: at most the flooder's limit of open jobs when the limit isolates them, hundreds in a
/// first-come-first-served backlog. It does not depend on how fast the stack is.
pub fn ended_while_waiting(waiting: &[Life], served: &[Life]) -> Vec<usize> {
    waiting
        .iter()
        .map(|w| {
            served
                .iter()
                .filter(|s| s.to > w.from && s.to < w.to)
                .count()
        })
        .collect()
}

#[cfg(test)]
mod fairness_tests {
    use super::*;

    fn l(from: f64, to: f64) -> Life {
        Life { from, to }
    }

    #[test]
    fn a_span_with_open_jobs_and_no_end_is_a_stall() {
        // Jobs end every second, then nothing ends for 12 s while one is open.
        let lives = [l(0.0, 1.0), l(0.5, 2.0), l(1.5, 14.0), l(13.0, 15.0)];
        assert_eq!(stalls(&lives, 3.0), vec![(2.0, 14.0)]);
        assert!(in_stall(&l(5.0, 16.0), &stalls(&lives, 3.0)));
        assert!(!in_stall(&l(14.5, 16.0), &stalls(&lives, 3.0)));
    }

    #[test]
    fn an_idle_stack_is_not_stalled() {
        // Nothing open between 2 s and 10 s: the gap is idleness, not a stall.
        let lives = [l(0.0, 2.0), l(10.0, 11.0)];
        assert!(stalls(&lives, 3.0).is_empty());
    }

    #[test]
    fn work_served_while_waiting_counts_only_what_ended_in_between() {
        let waiting = [l(10.0, 13.0)];
        // Before it, during it (2), overtaking it (1: created later, ended sooner), after it.
        let served = [
            l(1.0, 9.0),
            l(8.0, 11.0),
            l(9.0, 12.0),
            l(11.0, 12.5),
            l(12.0, 14.0),
        ];
        assert_eq!(ended_while_waiting(&waiting, &served), vec![3]);
    }

    #[test]
    fn a_backlog_ahead_shows_as_many_served() {
        // A FIFO backlog of 100 flooder jobs ahead, served 2/s: the waiting job sees all 100 end.
        let served: Vec<Life> = (0..100).map(|i| l(0.0, 1.0 + f64::from(i) * 0.5)).collect();
        let waiting = [l(0.5, 51.0)];
        assert_eq!(ended_while_waiting(&waiting, &served), vec![100]);
    }
}
