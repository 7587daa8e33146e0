//! The chaos suite: faults between the deployed functions and the local AWS (the fault proxy,
//! `crates/faults`), and function processes killed mid-job, under a steady load; every scenario
//! ends with the invariants of `chaos_kit::Check`.
//!
//! `make chaos` runs every scenario (the long ones are `#[ignore]`d); `make test` runs the smoke
//! scenario only. Each scenario prints a Markdown report and keeps it in `.local/chaos/`;
//! `docs/reliability.md` records the measured results.
//!
//! Durations: `CHAOS_SCALE` multiplies every fault and load duration (default 1, the issue's
//! values); single ones can be set in seconds (`CHAOS_DDB_OUTAGE_S`, …, see each scenario).
//! Without the fault proxy in the functions' path (a LocalStack not started by this checkout, or
//! `RESIZER_FAULT_PROXY=0`) the scenarios are skipped, unless `CHAOS_REQUIRED=1` (`make chaos`).

mod chaos_kit;
mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chaos_kit::*;
use common::*;
use resizer_aws::resources;
use resizer_core::job::{JobId, JobStatus};
use resizer_faults::{ErrorKind, Fault, Rule, Snapshot};
use time::OffsetDateTime;

/// A scenario's surroundings: the stack, the proxy, the processes, a client of the api.
struct Env {
    state: State,
    faults: Faults,
    procs: Option<Processes>,
    client: Client,
    start: Snapshot,
    _clear: ClearOnDrop,
}

impl Env {
    /// `None` (skipped, said loudly) when the functions do not call the fault proxy.
    async fn new(name: &str) -> Option<Self> {
        let required = std::env::var("CHAOS_REQUIRED").is_ok_and(|v| v == "1");
        let state = state().await;
        let Some(faults) = Faults::connect().await else {
            let why = "the functions do not go through this checkout's fault proxy (a LocalStack \
                       not started by localstack/up.sh, or RESIZER_FAULT_PROXY=0)";
            assert!(!required, "{name}: {why}");
            eprintln!("SKIPPED {name}: {why}");
            return None;
        };
        faults.clear().await;
        let clear = faults.guard();
        let start = faults.snapshot().await;
        Some(Self {
            client: Client::new(&state),
            procs: Processes::find(),
            state,
            faults,
            start,
            _clear: clear,
        })
    }

    fn function(&self, r: resizer_aws::resources::Resource) -> String {
        self.state.output(r)
    }

    /// One job per tenant, done, through the proxy: the functions are warm and the proxy is in
    /// their path (its counters saw the api's enqueue and the resize function's claim).
    async fn warm_up(&self, tenants: &[Tenant]) -> Vec<JobId> {
        let before = self.faults.snapshot().await;
        let mut ids = Vec::new();
        for t in tenants {
            let (_, a) = self.client.submit(t).await;
            match a {
                Answer::Accepted(id) => ids.push(id),
                other => panic!("warm-up submission of {}: {other:?}", t.name),
            }
        }
        let jobs = settle(&self.state, &ids, Duration::from_secs(120)).await;
        assert!(
            jobs.iter().all(|j| j.status == JobStatus::Done),
            "warm-up jobs: {:?}",
            jobs.iter()
                .map(|j| (j.status, j.error.clone()))
                .collect::<Vec<_>>()
        );
        let after = self.faults.snapshot().await;
        let count = |s: &Snapshot, svc: &str, op: &str| {
            s.services
                .get(svc)
                .and_then(|x| x.operations.get(op))
                .copied()
                .unwrap_or(0)
        };
        assert!(
            count(&after, "sqs", "SendMessage") > count(&before, "sqs", "SendMessage")
                && count(&after, "dynamodb", "UpdateItem")
                    > count(&before, "dynamodb", "UpdateItem"),
            "the functions' calls do not reach the fault proxy at {}",
            self.faults.base
        );
        ids
    }

    async fn injected(&self) -> String {
        let now = self.faults.snapshot().await;
        format!("{:?}", injected_between(&self.start, &now))
    }

    fn processes(&self) -> &Processes {
        self.procs.as_ref().expect(
            "this checkout's LocalStack PID (RESIZER_LOCALSTACK_PID or .local/localstack/localstack.pid)",
        )
    }
}

/// A small photo-like JPEG and a cheap transform: tens of milliseconds of work.
fn small() -> (Vec<u8>, &'static str) {
    (jpeg(640, 480), "width=160&format=webp")
}

/// A larger JPEG to a large AVIF: a second or more of conversion, long enough to be killed in.
fn slow() -> (Vec<u8>, &'static str) {
    (jpeg(2000, 1400), "width=1400&format=avif")
}

/// The same JPEG to a smaller AVIF (about half the CPU of [`slow`]), for the smoke scenario on the
/// `make test` stack: its 10 s resize timeout leaves a conversion 6.5 s of wall time, which a
/// 1.2 s-CPU conversion overran on a 2-core host under a load average of 25 (measured: 1.9 to
/// 9.4 s for the same conversion in one `make chaos` run). Still long enough to be killed in.
fn medium() -> (Vec<u8>, &'static str) {
    (jpeg(2000, 1400), "width=1000&format=avif")
}

async fn tenants(state: &State, specs: &[(&str, (Vec<u8>, &'static str))]) -> Vec<Tenant> {
    let mut out = Vec::new();
    for (name, (img, q)) in specs {
        out.push(tenant(state, name, img.clone(), q).await);
    }
    out
}

fn phases(marks: &[(&'static str, Duration)], end: Duration) -> Vec<Phase> {
    let mut out = Vec::new();
    for (i, (name, from)) in marks.iter().enumerate() {
        let to = marks.get(i + 1).map_or(end, |m| m.1);
        out.push(Phase {
            name,
            from: *from,
            to,
        });
    }
    out
}

/// The API's answer to every submission: an HTTP answer within `bound`, and no 5xx but 503.
fn check_bounded(v: &mut Verdict, subs: &[Submission], bound: Duration) {
    let slowest = subs.iter().map(|s| s.took).max().unwrap_or_default();
    let no_answer = subs
        .iter()
        .filter(|s| matches!(s.answer, Answer::Unanswered(_)))
        .count();
    let late = subs.iter().filter(|s| s.took > bound).count();
    let bad: Vec<String> = subs
        .iter()
        .filter_map(|s| match &s.answer {
            Answer::Refused { status, code }
                if *status >= 500 && !(*status == 503 && code == "service_unavailable") =>
            {
                Some(format!("{status} {code}"))
            }
            _ => None,
        })
        .collect();
    v.line(format!(
        "slowest answer {:.1} s (bound {:.0} s); without an answer: {no_answer}; over the bound: {late}; 5xx other than 503 service_unavailable: {}",
        slowest.as_secs_f64(),
        bound.as_secs_f64(),
        bad.len()
    ));
    if no_answer > 0 || late > 0 {
        v.violation(format!(
            "{no_answer} submissions got no answer and {late} took longer than {bound:?}"
        ));
    }
    if !bad.is_empty() {
        v.violation(format!(
            "{} submissions answered another 5xx than 503 service_unavailable: {:?}",
            bad.len(),
            &bad[..bad.len().min(3)]
        ));
    }
}

/// A kill of the resize process while it converted one job.
#[derive(Debug, Clone)]
struct Kill {
    job: JobId,
    at: Duration,
    pids: Vec<u32>,
}

/// Follows the proxy's event feed; when the resize function has read a staged input of `victim`,
/// or claimed one of its jobs whose image rides in the message (a write to the jobs table, then
/// the victim's job found `processing`), the conversion starts: it waits a moment into the
/// conversion and SIGKILLs the resize processes that are using CPU. A kill counts when the job was still unfinished right after it. Each job is
/// killed at most once. Stops after `n` kills or at `until`.
async fn kill_mid_conversion(
    env: &Env,
    victim: &Tenant,
    n: usize,
    t0: Instant,
    until: Instant,
) -> (Vec<Kill>, BTreeMap<&'static str, usize>) {
    let resize = env.function(resources::RESIZE_FUNCTION);
    let prefix = format!("/inline/{}/", victim.customer_id);
    let mut after = env.faults.snapshot().await.next_event;
    let mut kills = Vec::new();
    let mut tried: HashSet<String> = HashSet::new();
    let mut misses: BTreeMap<&'static str, usize> = BTreeMap::new();
    while kills.len() < n && Instant::now() < until {
        let page = env.faults.events(after).await;
        after = page.next;
        let candidate = page
            .events
            .iter()
            .rev()
            .find(|e| {
                e.call.operation == "GetObject"
                    && e.status == Some(200)
                    && e.call.target.contains(&prefix)
            })
            .and_then(|e| e.call.target.rsplit('/').next())
            .filter(|id| !tried.contains(*id))
            .and_then(JobId::parse);
        let claimed = page.events.iter().any(|e| {
            e.call.operation == "UpdateItem"
                && e.status == Some(200)
                && e.call
                    .target
                    .contains(env.state.resources.jobs_table.as_str())
        });
        let candidate = match candidate {
            Some(j) => Some(j),
            None if claimed => processing_job_of(env, &victim.customer_id, &tried).await,
            None => None,
        };
        let Some(job) = candidate else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tried.insert(job.as_str().to_owned());
        tokio::time::sleep(Duration::from_secs_f64(uniform(0.1, 0.4))).await;
        let busy = env
            .processes()
            .busy(&resize, Duration::from_millis(40))
            .await;
        if busy.is_empty() {
            *misses.entry("no resize process busy").or_default() += 1;
            continue;
        }
        let before = env.state.app.stores.jobs.get(&job).await.ok().flatten();
        if before.as_ref().is_none_or(|j| j.status.is_terminal()) {
            *misses.entry("job already finished").or_default() += 1;
            continue;
        }
        let at = t0.elapsed();
        for p in &busy {
            Processes::sigkill(*p);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after_kill = env.state.app.stores.jobs.get(&job).await.ok().flatten();
        if after_kill.is_some_and(|j| !j.status.is_terminal()) {
            kills.push(Kill {
                job,
                at,
                pids: busy,
            });
        } else {
            *misses.entry("killed after the job finished").or_default() += 1;
        }
    }
    (kills, misses)
}

/// One of `customer_id`'s jobs that an attempt holds now (`processing`, not given back), found
/// through the jobs table's open-by-customer index; none of `tried`.
async fn processing_job_of(env: &Env, customer_id: &str, tried: &HashSet<String>) -> Option<JobId> {
    let open = env
        .state
        .dynamodb()
        .query()
        .table_name(&env.state.resources.jobs_table)
        .index_name(resizer_aws::dynamo::OPEN_BY_CUSTOMER_INDEX)
        .key_condition_expression("open_customer = :c")
        .expression_attribute_values(
            ":c",
            aws_sdk_dynamodb::types::AttributeValue::S(customer_id.to_owned()),
        )
        .send()
        .await
        .ok()?;
    for item in open.items() {
        let Some(id) = item
            .get("job_id")
            .and_then(|v| v.as_s().ok())
            .filter(|id| !tried.contains(id.as_str()))
            .and_then(|id| JobId::parse(id))
        else {
            continue;
        };
        if let Ok(Some(j)) = env.state.app.stores.jobs.get(&id).await
            && j.status == JobStatus::Processing
            && !j.released
        {
            return Some(id);
        }
    }
    None
}

fn report_kills(
    v: &mut Verdict,
    kills: &[Kill],
    misses: &BTreeMap<&'static str, usize>,
    jobs: &[resizer_core::job::Job],
) {
    let mut again = 0;
    let mut not_done = Vec::new();
    for k in kills {
        match jobs.iter().find(|j| j.job_id == k.job) {
            Some(j) if j.status == JobStatus::Done && j.attempts >= 2 => again += 1,
            Some(j) => not_done.push(format!("{} {} claims {}", j.job_id, j.status, j.attempts)),
            None => not_done.push(format!("{} unknown", k.job)),
        }
    }
    v.line(format!(
        "resize processes SIGKILLed mid-conversion: {} ({} processes, at {:?} s); attempts that found nothing to kill: {misses:?}",
        kills.len(),
        kills.iter().map(|k| k.pids.len()).sum::<usize>(),
        kills.iter().map(|k| k.at.as_secs()).collect::<Vec<_>>()
    ));
    v.line(format!(
        "killed jobs claimed again and done: {again} of {}",
        kills.len()
    ));
    if !not_done.is_empty() {
        v.violation(format!(
            "killed jobs not done after a new claim: {not_done:?}"
        ));
    }
}

// ---- make test ------------------------------------------------------------------------------

/// The smoke scenario (`make test`, about three minutes measured): SQS black-holed for the api for 15 s, and
/// the resize process SIGKILLed in the middle of two conversions, under a light load. The API
/// answers every request in bounded time, and every job it accepted ends done, once.
#[tokio::test]
async fn smoke_sqs_blackout_and_resize_kills() {
    let _serial = SERIAL.lock().await;
    let Some(env) = Env::new("smoke").await else {
        return;
    };
    let ts = tenants(&env.state, &[("fast", small()), ("slow", medium())]).await;
    let warm = env.warm_up(&ts).await;
    let outage = secs("CHAOS_SMOKE_OUTAGE_S", 15.0);
    let load_for = secs("CHAOS_SMOKE_LOAD_S", 40.0);
    let kills_wanted = num("CHAOS_SMOKE_KILLS", 2.0) as usize;
    let mut report = Report::new(
        "smoke",
        "Smoke (make test): SQS black-holed for the api, resize killed mid-conversion",
    );

    let t0 = Instant::now();
    let t0_wall = OffsetDateTime::now_utc();
    let load = Load::start(
        &env.client,
        t0,
        &[(ts[0].clone(), 0.7), (ts[1].clone(), 0.2)],
    );
    let fault_at = Duration::from_secs(5);
    let killer = kill_mid_conversion(&env, &ts[1], kills_wanted, t0, t0 + load_for);
    let blackout = async {
        tokio::time::sleep_until((t0 + fault_at).into()).await;
        env.faults
            .add(&Rule::new("sqs", Fault::Hang).lasting(outage))
            .await;
    };
    let ((kills, misses), ()) = tokio::join!(killer, blackout);
    tokio::time::sleep_until((t0 + load_for).into()).await;
    let subs = load.stop().await;
    env.faults.clear().await;

    report.line(format!(
        "fault: sqs hang (black hole) 100 % for {:.0} s from t={:.0} s; {kills_wanted} resize kills wanted",
        outage.as_secs_f64(),
        fault_at.as_secs_f64()
    ));
    report.line(format!(
        "load: fast 0.7/s (640×480 JPEG → 160 px WebP), slow 0.2/s (2000×1400 JPEG → 1000 px AVIF), {:.0} s",
        load_for.as_secs_f64()
    ));
    report.line(format!("injected: {}", env.injected().await));
    let mut v = Check {
        state: &env.state,
        tenants: &ts,
        subs: &subs,
        extra_jobs: warm,
        settle: Duration::from_secs(240),
        t0,
        t0_wall,
        phases: phases(
            &[
                ("before", Duration::ZERO),
                ("during", fault_at),
                ("after", fault_at + outage),
            ],
            load_for,
        ),
    }
    .run()
    .await;
    check_bounded(&mut v, &subs, Duration::from_secs(29));
    let jobs = v.jobs.clone();
    report_kills(&mut v, &kills, &misses, &jobs);
    if kills.len() < kills_wanted {
        v.violation(format!(
            "only {} of {kills_wanted} kills landed mid-conversion",
            kills.len()
        ));
    }
    report.verdict(&v);
    report.finish(&v);
}

// ---- make chaos -----------------------------------------------------------------------------

/// DynamoDB unreachable for 10 minutes during a backlog: after recovery every job is done.
#[tokio::test]
#[ignore = "make chaos (11 minutes measured)"]
async fn dynamodb_unreachable_during_a_backlog() {
    let _serial = SERIAL.lock().await;
    let Some(env) = Env::new("dynamodb-outage").await else {
        return;
    };
    let outage = secs("CHAOS_DDB_OUTAGE_S", 600.0);
    let after = secs("CHAOS_AFTER_S", 60.0);
    let backlog = num("CHAOS_BACKLOG", 80.0) as usize;
    let mode = std::env::var("CHAOS_DDB_MODE").unwrap_or_else(|_| "reset".into());
    let fault = if mode == "hang" {
        Fault::Hang
    } else {
        Fault::Reset
    };
    let ts = tenants(&env.state, &[("backlog", small()), ("steady", small())]).await;
    let warm = env.warm_up(&ts).await;
    let mut report = Report::new("dynamodb-outage", "DynamoDB unreachable during a backlog");

    let t0 = Instant::now();
    let t0_wall = OffsetDateTime::now_utc();
    let mut subs = burst(&env.client, t0, &ts[0], backlog, 8).await;
    let fault_at = t0.elapsed();
    env.faults
        .add(&Rule::new("dynamodb", fault.clone()).lasting(outage))
        .await;
    let load = Load::start(&env.client, t0, &[(ts[1].clone(), 0.5)]);
    let queued_then = {
        let ids = accepted(&subs);
        let mut n = 0;
        for id in &ids {
            if env
                .state
                .app
                .stores
                .jobs
                .get(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|j| !j.status.is_terminal())
            {
                n += 1;
            }
        }
        n
    };
    tokio::time::sleep_until((t0 + fault_at + outage + after).into()).await;
    subs.extend(load.stop().await);
    env.faults.clear().await;
    let end = t0.elapsed();

    report.line(format!(
        "fault: dynamodb {} 100 % for {:.0} s, from t={:.0} s (the end of the backlog's submission)",
        fault.name(),
        outage.as_secs_f64(),
        fault_at.as_secs_f64()
    ));
    report.line(format!(
        "load: a backlog of {backlog} jobs submitted at once (8 at a time), then 0.5/s until {:.0} s after the outage; {queued_then} backlog jobs unfinished when the outage began",
        after.as_secs_f64()
    ));
    report.line(format!("injected: {}", env.injected().await));
    let v = Check {
        state: &env.state,
        tenants: &ts,
        subs: &subs,
        extra_jobs: warm,
        settle: secs("CHAOS_SETTLE_S", 900.0),
        t0,
        t0_wall,
        phases: phases(
            &[
                ("backlog", Duration::ZERO),
                ("during", fault_at),
                ("after", fault_at + outage),
            ],
            end,
        ),
    }
    .run()
    .await;
    report.verdict(&v);
    report.finish(&v);
}

/// S3 answering 503 SlowDown to 20 % of calls for 5 minutes: every job done, latency recorded.
#[tokio::test]
#[ignore = "make chaos (7.5 minutes measured)"]
async fn s3_slowdown_for_a_fifth_of_calls() {
    let _serial = SERIAL.lock().await;
    let Some(env) = Env::new("s3-slowdown").await else {
        return;
    };
    let before = secs("CHAOS_BEFORE_S", 60.0);
    let during = secs("CHAOS_S3_FAULT_S", 300.0);
    let after = secs("CHAOS_AFTER_S", 60.0);
    let percent = num("CHAOS_S3_PERCENT", 20.0);
    let ts = tenants(&env.state, &[("a", small()), ("b", small())]).await;
    let warm = env.warm_up(&ts).await;
    let mut report = Report::new("s3-slowdown", "S3 503 SlowDown for a fifth of calls");

    let t0 = Instant::now();
    let t0_wall = OffsetDateTime::now_utc();
    let load = Load::start(
        &env.client,
        t0,
        &[(ts[0].clone(), 0.5), (ts[1].clone(), 0.5)],
    );
    tokio::time::sleep(before).await;
    env.faults
        .add(
            &Rule::new(
                "s3",
                Fault::Error {
                    error: ErrorKind::Throttle,
                },
            )
            .percent(percent)
            .lasting(during),
        )
        .await;
    tokio::time::sleep_until((t0 + before + during + after).into()).await;
    let subs = load.stop().await;
    env.faults.clear().await;
    let end = t0.elapsed();

    report.line(format!(
        "fault: s3 503 SlowDown to {percent} % of calls for {:.0} s, from t={:.0} s",
        during.as_secs_f64(),
        before.as_secs_f64()
    ));
    report.line(format!(
        "load: two customers at 0.5/s each (640×480 JPEG → 160 px WebP) for {:.0} s",
        end.as_secs_f64()
    ));
    report.line(format!("injected: {}", env.injected().await));
    let v = Check {
        state: &env.state,
        tenants: &ts,
        subs: &subs,
        extra_jobs: warm,
        settle: secs("CHAOS_SETTLE_S", 600.0),
        t0,
        t0_wall,
        phases: phases(
            &[
                ("before", Duration::ZERO),
                ("during", before),
                ("after", before + during),
            ],
            end,
        ),
    }
    .run()
    .await;
    report.verdict(&v);
    report.finish(&v);
}

/// SQS unreachable for 2 minutes: the API answers 503 within a bounded time (no request hangs),
/// and every job it accepted ends done.
#[tokio::test]
#[ignore = "make chaos (2.5 minutes measured)"]
async fn sqs_unreachable_for_the_api() {
    let _serial = SERIAL.lock().await;
    let Some(env) = Env::new("sqs-outage").await else {
        return;
    };
    let before = secs("CHAOS_BEFORE_S", 30.0);
    let during = secs("CHAOS_SQS_OUTAGE_S", 120.0);
    let after = secs("CHAOS_AFTER_S", 30.0);
    let bound = Duration::from_secs_f64(num("CHAOS_API_BOUND_S", 29.0));
    let ts = tenants(&env.state, &[("a", small())]).await;
    let warm = env.warm_up(&ts).await;
    let mut report = Report::new("sqs-outage", "SQS unreachable for the api");

    let t0 = Instant::now();
    let t0_wall = OffsetDateTime::now_utc();
    let load = Load::start(&env.client, t0, &[(ts[0].clone(), 1.0)]);
    tokio::time::sleep(before).await;
    env.faults
        .add(&Rule::new("sqs", Fault::Hang).lasting(during))
        .await;
    tokio::time::sleep_until((t0 + before + during + after).into()).await;
    let subs = load.stop().await;
    env.faults.clear().await;
    let end = t0.elapsed();

    report.line(format!(
        "fault: sqs hang (black hole: no answer until the outage ends, then a reset) 100 % for {:.0} s, from t={:.0} s",
        during.as_secs_f64(),
        before.as_secs_f64()
    ));
    report.line(format!(
        "load: one customer at 1/s for {:.0} s; bound on every answer: {:.0} s (the api function's timeout, under API Gateway's 30 s)",
        end.as_secs_f64(),
        bound.as_secs_f64()
    ));
    report.line(format!("injected: {}", env.injected().await));
    let mut v = Check {
        state: &env.state,
        tenants: &ts,
        subs: &subs,
        extra_jobs: warm,
        settle: secs("CHAOS_SETTLE_S", 300.0),
        t0,
        t0_wall,
        phases: phases(
            &[
                ("before", Duration::ZERO),
                ("during", before),
                ("after", before + during),
            ],
            end,
        ),
    }
    .run()
    .await;
    check_bounded(&mut v, &subs, bound);
    report.verdict(&v);
    report.finish(&v);
}

/// The resize process SIGKILLed mid-conversion, 20 times during a run: every job done, once.
#[tokio::test]
#[ignore = "make chaos (4 minutes measured)"]
async fn resize_killed_mid_conversion() {
    let _serial = SERIAL.lock().await;
    let Some(env) = Env::new("resize-kills").await else {
        return;
    };
    let wanted = num("CHAOS_KILLS", 20.0) as usize;
    let limit = secs("CHAOS_KILL_WINDOW_S", 600.0);
    let ts = tenants(&env.state, &[("slow", slow()), ("fast", small())]).await;
    let warm = env.warm_up(&ts).await;
    let mut report = Report::new("resize-kills", "The resize process killed mid-conversion");

    let t0 = Instant::now();
    let t0_wall = OffsetDateTime::now_utc();
    let load = Load::start(
        &env.client,
        t0,
        &[(ts[0].clone(), 0.4), (ts[1].clone(), 0.4)],
    );
    let (kills, misses) = kill_mid_conversion(&env, &ts[0], wanted, t0, t0 + limit).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let subs = load.stop().await;
    let end = t0.elapsed();

    report.line(format!(
        "fault: SIGKILL of the busy resize process 0.1–0.4 s after it read a staged input of the slow customer or claimed one of its jobs whose image rides in the message, at most once per job, {wanted} times wanted"
    ));
    report.line(format!(
        "load: slow 0.4/s (2000×1400 JPEG → 1400 px AVIF), fast 0.4/s (640×480 JPEG → 160 px WebP), {:.0} s",
        end.as_secs_f64()
    ));
    let mut v = Check {
        state: &env.state,
        tenants: &ts,
        subs: &subs,
        extra_jobs: warm,
        settle: secs("CHAOS_SETTLE_S", 600.0),
        t0,
        t0_wall,
        phases: phases(&[("run", Duration::ZERO)], end),
    }
    .run()
    .await;
    let jobs = v.jobs.clone();
    report_kills(&mut v, &kills, &misses, &jobs);
    if kills.len() < wanted {
        v.violation(format!(
            "only {} of {wanted} kills landed mid-conversion",
            kills.len()
        ));
    }
    report.verdict(&v);
    report.finish(&v);
}

/// The aggregator killed mid-run: the next run's rollups are exact. An hour is closed by
/// aggregate-slice invocations (the scheduled aggregate function only picks the due hours and
/// invokes them), so it is the slice processes that are killed, in the middle of closing the
/// jobs' hours: their reads of raw usage are slowed (the proxy adds latency to their queries) so
/// that a close lasts long enough to be killed in; each round adds jobs, kills a close in the
/// middle, closes again and checks the rollups.
#[tokio::test]
#[ignore = "make chaos (1.5 minutes measured)"]
async fn aggregator_killed_mid_run() {
    let _serial = SERIAL.lock().await;
    let Some(env) = Env::new("aggregator-kills").await else {
        return;
    };
    let rounds = num("CHAOS_AGG_ROUNDS", 5.0) as usize;
    let ts = tenants(&env.state, &[("a", small()), ("b", small())]).await;
    let warm = env.warm_up(&ts).await;
    let slice_fn = env.function(resources::AGGREGATE_SLICE_FUNCTION);
    let usage_table = env.state.resources.usage_table.clone();
    let rollups_table = env.state.resources.usage_rollups_table.clone();
    let mut report = Report::new("aggregator-kills", "The aggregator killed mid-run");
    let t0 = Instant::now();
    let t0_wall = OffsetDateTime::now_utc();
    let mut subs = Vec::new();
    let mut lines = Vec::new();
    let mut round_failures = Vec::new();
    let customers: std::collections::BTreeSet<String> =
        ts.iter().map(|t| t.customer_id.clone()).collect();

    for round in 1..=rounds {
        for t in &ts {
            subs.extend(burst(&env.client, t0, t, 5, 5).await);
        }
        let mut ids = accepted(&subs);
        ids.extend(warm.iter().cloned());
        let jobs = settle(&env.state, &ids, Duration::from_secs(180)).await;
        env.faults
            .add(
                &Rule::new(
                    "dynamodb",
                    Fault::Latency {
                        ms: 300,
                        jitter_ms: 200,
                    },
                )
                .operations(&["Query"])
                .target_contains(&usage_table),
            )
            .await;
        env.faults
            .add(
                &Rule::new(
                    "dynamodb",
                    Fault::Latency {
                        ms: 100,
                        jitter_ms: 100,
                    },
                )
                .operations(&["PutItem", "UpdateItem", "Query"])
                .target_contains(&rollups_table),
            )
            .await;
        let mark = env.faults.snapshot().await.next_event;
        let (state, to_close) = (env.state.clone(), jobs.clone());
        let run = tokio::spawn(async move {
            close_hours_of(&state, &to_close)
                .await
                .map_err(|e| e.to_string())
        });
        // Odd rounds: wait for the close's first query of raw usage, then into the reads. Even
        // rounds: wait for its first rollup write, then into the writes.
        let while_writing = round % 2 == 0;
        let is_rollup_write = |e: &resizer_faults::Event| {
            matches!(e.call.operation.as_str(), "PutItem" | "UpdateItem")
                && e.call.target.contains(&rollups_table)
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut started = false;
        while Instant::now() < deadline && !started {
            started = env.faults.events(mark).await.events.iter().any(|e| {
                if while_writing {
                    is_rollup_write(e)
                } else {
                    e.call.operation == "Query" && e.call.target.contains(&usage_table)
                }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wait = if while_writing {
            uniform(0.0, 0.3)
        } else {
            uniform(0.2, 2.5)
        };
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        let writes_before_kill = env
            .faults
            .events(mark)
            .await
            .events
            .iter()
            .filter(|e| is_rollup_write(e))
            .count();
        let pids = env.processes().of(&slice_fn);
        for p in &pids {
            Processes::sigkill(*p);
        }
        let killed_run = run.await.expect("the close task");
        env.faults.clear().await;
        let mid_run = killed_run
            .as_ref()
            .err()
            .is_some_and(|e| e.contains("signal: killed") || e.contains("Runtime.ExitError"));
        // The next close.
        let exact = match close_hours_of(&env.state, &jobs).await {
            Ok(_) => match usage_of(&env.state, &customers, &jobs).await {
                Ok(records) => {
                    compare_rollups(&env.state, &customers, &jobs, &records)
                        .await
                        .0
                }
                Err(e) => vec![e],
            },
            Err(e) => vec![format!("the next close failed: {e}")],
        };
        lines.push(format!(
            "round {round}: {} jobs; killed {} aggregate-slice process(es) {} ({} rollup writes before the kill); the next close's rollups {}",
            jobs.len(),
            pids.len(),
            if mid_run { "mid-close (its invocation failed: killed)" } else { "but the close had already ended" },
            writes_before_kill,
            if exact.is_empty() {
                "exact".to_owned()
            } else {
                format!("differ: {:?}", &exact[..exact.len().min(2)])
            }
        ));
        if !exact.is_empty() {
            round_failures.push(format!(
                "round {round}: {} rollups differ after the next close",
                exact.len()
            ));
        }
        if !mid_run {
            round_failures.push(format!(
                "round {round}: the kill did not land mid-run ({killed_run:?})"
            ));
        }
    }
    let end = t0.elapsed();
    report.line(format!(
        "fault: {rounds} rounds of: 10 more jobs, a close of their hours by the deployed aggregate-slice function with its DynamoDB calls slowed (raw-usage queries +300–500 ms, rollup writes +100–200 ms), its processes SIGKILLed 0.2–2.5 s after the first query (odd rounds) or 0–0.3 s after the first rollup write (even rounds), then the next close checked"
    ));
    for l in &lines {
        report.line(l);
    }
    let mut v = Check {
        state: &env.state,
        tenants: &ts,
        subs: &subs,
        extra_jobs: warm,
        settle: Duration::from_secs(120),
        t0,
        t0_wall,
        phases: phases(&[("run", Duration::ZERO)], end),
    }
    .run()
    .await;
    for f in round_failures {
        v.violation(f);
    }
    report.verdict(&v);
    report.finish(&v);
}

/// One customer floods (10× the others). Two bounds, stated in docs/reliability.md:
/// - isolation in the stack's own units: of the flooder's jobs, at most its limit of open jobs
///   (`CHAOS_FLOOD_MAX_OPEN_JOBS`, 4) + `FLOOD_SLACK` end while one of the others' jobs waits (p95);
/// - latency: the others' p95 submit→done during the flood ≤ `CHAOS_FLOOD_BOUND_S` (5 s), apart
///   from stalls of the whole stack (`stalls`), which may touch at most a fifth of their jobs.
///
/// The flooder's 429s count as not accepted. What isolates the others is the per-customer limit of
/// open jobs, the same for all four (about 1.5 s of the local stack's ≈ 2.8 jobs/s, as
/// docs/capacity.md sizes `CustomerMaxOpenJobs` for AWS). The per-customer rate limit alone failed
/// the latency bound (docs/reliability.md: the admitted rates exceed the local stack's capacity, and
/// one queue serves everyone first come, first served).
/// The flooder's jobs that may overtake another's (see `one_customer_floods`).
const FLOOD_SLACK: u64 = 2;
/// The shortest span without a job ending (while jobs are open) that counts as a stall.
const STALL_S: f64 = 3.0;

#[tokio::test]
#[ignore = "make chaos (8 minutes measured)"]
async fn one_customer_floods() {
    let _serial = SERIAL.lock().await;
    let Some(env) = Env::new("flood").await else {
        return;
    };
    let base = secs("CHAOS_BEFORE_S", 60.0);
    let flood_for = secs("CHAOS_FLOOD_S", 180.0);
    let after = secs("CHAOS_AFTER_S", 60.0);
    let rate = num("CHAOS_FLOOD_OTHERS_RATE", 0.25);
    let bound_s = num("CHAOS_FLOOD_BOUND_S", 5.0);
    let max_open = num("CHAOS_FLOOD_MAX_OPEN_JOBS", 4.0) as u64;
    let ts = tenants(
        &env.state,
        &[
            ("n1", small()),
            ("n2", small()),
            ("n3", small()),
            ("flooder", small()),
        ],
    )
    .await;
    // One plan for all four, as an operator sets it (`resizer admin customer set-max-open-jobs`).
    for t in &ts {
        env.state
            .app
            .stores
            .accounts
            .set_customer_max_open_jobs(&t.customer_id, Some(max_open))
            .await
            .expect("set the customers' limit of open jobs");
    }
    let warm = env.warm_up(&ts).await;
    let mut report = Report::new("flood", "One customer floods at 10× the others' rate");

    let t0 = Instant::now();
    let t0_wall = OffsetDateTime::now_utc();
    let others: Vec<(Tenant, f64)> = ts[..3].iter().map(|t| (t.clone(), rate)).collect();
    let load = Load::start(&env.client, t0, &others);
    tokio::time::sleep(base).await;
    let flood = Load::start(&env.client, t0, &[(ts[3].clone(), rate * 10.0)]);
    tokio::time::sleep(flood_for).await;
    let mut subs = flood.stop().await;
    tokio::time::sleep(after).await;
    subs.extend(load.stop().await);
    subs.sort_by_key(|s| s.at);
    let end = t0.elapsed();

    report.line(format!(
        "load: three customers at {rate}/s each for {:.0} s; the flooder at {}/s (10×) from t={:.0} s for {:.0} s; each of the four may have {max_open} unfinished jobs",
        end.as_secs_f64(),
        rate * 10.0,
        base.as_secs_f64(),
        flood_for.as_secs_f64()
    ));
    let mut v = Check {
        state: &env.state,
        tenants: &ts,
        subs: &subs,
        extra_jobs: warm,
        settle: secs("CHAOS_SETTLE_S", 900.0),
        t0,
        t0_wall,
        phases: phases(
            &[
                ("before", Duration::ZERO),
                ("during", base),
                ("after", base + flood_for),
            ],
            end,
        ),
    }
    .run()
    .await;
    let mut others_during: Vec<f64> = ["n1", "n2", "n3"]
        .iter()
        .flat_map(|n| {
            v.latency_by_phase
                .get(&format!("during/{n}"))
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    others_during.sort_by(f64::total_cmp);
    let mut others_before: Vec<f64> = ["n1", "n2", "n3"]
        .iter()
        .flat_map(|n| {
            v.latency_by_phase
                .get(&format!("before/{n}"))
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    others_before.sort_by(f64::total_cmp);
    let flooder_during = v
        .latency_by_phase
        .get("during/flooder")
        .cloned()
        .unwrap_or_default();
    v.line(format!(
        "the others' submit→done before the flood: {}; during: {}; the flooder's during: {}",
        summary_ms(&others_before),
        summary_ms(&others_during),
        summary_ms(&flooder_during)
    ));

    // Isolation, in the stack's own units: the flooder's jobs that ended while each of the others'
    // jobs created during the flood waited. The limit admits at most `max_open` of them ahead of
    // it; `FLOOD_SLACK` more may overtake it (a job's record is written before its message is sent,
    // so a slow submission can be passed by later ones). A first-come-first-served backlog shows
    // as hundreds here, however fast or slow the stack is.
    let flooder_id = &ts[3].customer_id;
    let flood_from = base.as_secs_f64();
    let flood_to = (base + flood_for).as_secs_f64();
    let lives: Vec<(bool, Life)> = v
        .jobs
        .iter()
        .filter(|j| j.status.is_terminal())
        .map(|j| (&j.customer_id == flooder_id, Life::of(j, t0_wall)))
        .collect();
    let flooder: Vec<Life> = lives.iter().filter(|(f, _)| *f).map(|(_, l)| *l).collect();
    let others: Vec<Life> = lives
        .iter()
        .filter(|(f, l)| !*f && l.from >= flood_from && l.from < flood_to)
        .map(|(_, l)| *l)
        .collect();
    let mut served: Vec<f64> = ended_while_waiting(&others, &flooder)
        .into_iter()
        .map(|n| n as f64)
        .collect();
    served.sort_by(f64::total_cmp);
    let served_p95 = pct(&served, 95.0);
    let served_bound = (max_open + FLOOD_SLACK) as f64;
    v.line(format!(
        "the flooder's jobs that ended while one of the others' waited (n={}): p50 {:.0}, p95 {served_p95:.0}, max {:.0}; bound on the p95: {served_bound:.0} (its limit of {max_open} open jobs + {FLOOD_SLACK})",
        served.len(),
        pct(&served, 50.0),
        served.last().copied().unwrap_or(f64::NAN),
    ));
    if served.is_empty() || served_p95 > served_bound {
        v.violation(format!(
            "the others' jobs waited for the flooder's: p95 {served_p95:.0} of its jobs ended while one waited, over {served_bound:.0}"
        ));
    }

    // Latency, apart from stalls of the whole stack (≥ 3 s in which jobs were open and none of any
    // customer's ended): no customer causes one by sending work, and one stall of 12 s on the
    // 2-core local stack once moved the others' p95 to 7.2 s while their median stayed 1.8 s
    // (docs/reliability.md). Stalls may touch at most a fifth of the others' jobs.
    let all: Vec<Life> = lives.iter().map(|(_, l)| *l).collect();
    let stalled = stalls(&all, STALL_S);
    let (touched, clear): (Vec<&Life>, Vec<&Life>) =
        others.iter().partition(|l| in_stall(l, &stalled));
    let mut clear_ms: Vec<f64> = clear.iter().map(|l| (l.to - l.from) * 1000.0).collect();
    clear_ms.sort_by(f64::total_cmp);
    let p95 = pct(&clear_ms, 95.0) / 1000.0;
    v.line(format!(
        "stalls of the whole stack (≥ {STALL_S} s, jobs open, none ended): {} ({:.1} s in all: {:?}); the others' jobs during the flood touched by one: {} of {}",
        stalled.len(),
        stalled.iter().map(|(a, b)| b - a).sum::<f64>(),
        stalled
            .iter()
            .map(|(a, b)| format!("{a:.0}–{b:.0} s"))
            .collect::<Vec<_>>(),
        touched.len(),
        others.len()
    ));
    v.line(format!(
        "bound: the others' p95 submit→done during the flood, apart from stalls, ≤ {bound_s} s; measured {p95:.1} s ({})",
        summary_ms(&clear_ms)
    ));
    if p95.is_nan() || p95 > bound_s {
        v.violation(format!(
            "the others' p95 submit→done during the flood is {p95:.1} s apart from stalls, over the bound of {bound_s} s"
        ));
    }
    if touched.len() * 5 > others.len() {
        v.violation(format!(
            "stalls of the whole stack touched {} of the others' {} jobs during the flood (more than a fifth)",
            touched.len(),
            others.len()
        ));
    }
    report.verdict(&v);
    report.finish(&v);
}
