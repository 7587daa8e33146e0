//! The load run behind `make load`: real photographs submitted at a fixed rate through a running
//! `resizer dev`, then every job checked.
//!
//! - submits `--jobs` images from `--corpus` (JPEGs) at `--rate` per second, without waiting;
//! - waits until every job is terminal;
//! - reports throughput and submit-to-done latency (the job record's `created_at` to its
//!   `updated_at`, both stamped by the service), and the CPU the gateway and LocalStack used;
//! - checks that every job is `done`, was processed once, has its result object, has exactly one
//!   raw usage item, and that the aggregated rollups count exactly the jobs done.
//!
//! It exits non-zero if any check fails. Its report is Markdown, for docs/benchmarks.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resizer_aws::stack::StackInfo;
use resizer_core::job::{JobId, JobStatus};
use resizer_core::key::{ApiKey, Customer, KeyRecord};
use resizer_core::usage::{HourKey, Period, Totals};
use tokio::sync::Semaphore;

struct Args {
    endpoint: String,
    corpus: PathBuf,
    jobs: usize,
    rate: f64,
    width: u32,
    pids: Vec<(String, u32)>,
}

fn parse_args() -> Args {
    let mut a = Args {
        endpoint: "http://127.0.0.1:3000".into(),
        corpus: PathBuf::from("bench/.work/corpus/main"),
        jobs: 2000,
        rate: 20.0,
        width: 400,
        pids: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoint" => a.endpoint = v,
            "--corpus" => a.corpus = v.into(),
            "--jobs" => a.jobs = v.parse().expect("--jobs N"),
            "--rate" => a.rate = v.parse().expect("--rate R"),
            "--width" => a.width = v.parse().expect("--width W"),
            "--pid" => {
                let (name, pid) = v.split_once('=').expect("--pid name=PID");
                a.pids.push((name.into(), pid.parse().expect("a PID")));
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let children: f64 = f.get(13)?.parse::<f64>().ok()? + f.get(14)?.parse::<f64>().ok()?;
    Some((ticks + children) / 100.0)
}

/// CPU of a process and all its descendants (LocalStack runs DynamoDB Local as a child JVM).
fn tree_cpu_seconds(pid: u32) -> f64 {
    let mut total = cpu_seconds(pid).unwrap_or(0.0);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if child != pid && is_descendant(child, pid) {
                total += cpu_seconds(child).unwrap_or(0.0);
            }
        }
    }
    total
}

fn is_descendant(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..32 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            return false;
        };
        if ppid == ancestor {
            return true;
        }
        if ppid <= 1 {
            return false;
        }
        pid = ppid;
    }
    false
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.corpus)
        .unwrap_or_else(|e| {
            panic!(
                "corpus {}: {e} (run `make load`, which builds it)",
                args.corpus.display()
            )
        })
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .jpg in {}", args.corpus.display());
    let images: Vec<Arc<Vec<u8>>> = files
        .iter()
        .map(|f| Arc::new(std::fs::read(f).unwrap()))
        .collect();
    let mean_kb =
        images.iter().map(|i| i.len()).sum::<usize>() as f64 / images.len() as f64 / 1024.0;

    let name = std::env::var("RESIZER_STACK").unwrap_or_else(|_| "resizer-local".into());
    let sdk = resizer_aws::load_sdk_config().await;
    let info = StackInfo::describe(&sdk, &name)
        .await
        .expect("read the stack (is `make dev` up?)");
    let state = info.app(&sdk).expect("the stack's resources and settings");
    let customer = Customer::new("load", state.now());
    state
        .stores
        .accounts
        .put_new_customer(&customer)
        .await
        .unwrap();
    let key = ApiKey::generate();
    state
        .stores
        .accounts
        .put_new_key(&KeyRecord::new(&key, &customer.customer_id, state.now()))
        .await
        .unwrap();
    let key = key.expose();

    let cpu_before: Vec<f64> = args
        .pids
        .iter()
        .map(|(_, p)| tree_cpu_seconds(*p))
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let limit = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut tasks = Vec::with_capacity(args.jobs);
    eprintln!(
        "submitting {} jobs ({} photos, mean {mean_kb:.0} KB) at {}/s to {}",
        args.jobs,
        images.len(),
        args.rate,
        args.endpoint
    );
    for i in 0..args.jobs {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = limit.clone().acquire_owned().await.unwrap();
        let (http, key, img) = (http.clone(), key.clone(), images[i % images.len()].clone());
        let url = format!("{}/v1/jobs?width={}", args.endpoint, args.width);
        tasks.push(tokio::spawn(async move {
            let _p = permit;
            let t = Instant::now();
            let r = http
                .post(url)
                .bearer_auth(key)
                .header("content-type", "image/jpeg")
                .body(img.as_ref().clone())
                .send()
                .await;
            let submit_ms = t.elapsed().as_secs_f64() * 1000.0;
            match r {
                Ok(resp) if resp.status() == 202 => {
                    let v: serde_json::Value = resp.json().await.unwrap_or_default();
                    Ok((
                        v["job_id"].as_str().unwrap_or_default().to_owned(),
                        submit_ms,
                    ))
                }
                Ok(resp) => Err(format!(
                    "HTTP {}: {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            }
        }));
    }
    let submit_elapsed = started.elapsed().as_secs_f64();
    let mut ids = Vec::new();
    let mut submit_ms = Vec::new();
    let mut submit_errors: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok((id, ms)) => {
                ids.push(JobId::parse(&id).expect("a job id"));
                submit_ms.push(ms);
            }
            Err(e) => {
                *submit_errors
                    .entry(e.chars().take(120).collect())
                    .or_default() += 1
            }
        }
    }
    eprintln!(
        "submitted {} in {submit_elapsed:.1} s; waiting for them to finish",
        ids.len()
    );

    // Wait until every job is terminal.
    let mut jobs: HashMap<JobId, resizer_core::job::Job> = HashMap::new();
    let mut pending: Vec<JobId> = ids.clone();
    let wait_deadline = Instant::now() + Duration::from_secs(1800);
    while !pending.is_empty() {
        assert!(
            Instant::now() < wait_deadline,
            "{} jobs still pending after 30 minutes",
            pending.len()
        );
        let mut still = Vec::new();
        for id in pending {
            match state.stores.jobs.get(&id).await {
                Ok(Some(j)) if j.status.is_terminal() => {
                    jobs.insert(id, j);
                }
                _ => still.push(id),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let cpu_after: Vec<f64> = args
        .pids
        .iter()
        .map(|(_, p)| tree_cpu_seconds(*p))
        .collect();

    // Latency and throughput from the service's own timestamps.
    let first = jobs.values().map(|j| j.created_at).min().unwrap();
    let last = jobs.values().map(|j| j.updated_at).max().unwrap();
    let span = (last - first).as_seconds_f64();
    let mut lat: Vec<f64> = jobs
        .values()
        .map(|j| (j.updated_at - j.created_at).as_seconds_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    submit_ms.sort_by(f64::total_cmp);

    // Checks.
    let mut failures: Vec<String> = Vec::new();
    let done: Vec<&resizer_core::job::Job> = jobs
        .values()
        .filter(|j| j.status == JobStatus::Done)
        .collect();
    if done.len() != jobs.len() {
        let mut codes: HashMap<String, usize> = HashMap::new();
        for j in jobs.values().filter(|j| j.status != JobStatus::Done) {
            *codes
                .entry(j.error.as_ref().map_or("?".into(), |e| e.code.clone()))
                .or_default() += 1;
        }
        failures.push(format!(
            "{} of {} jobs not done: {codes:?}",
            jobs.len() - done.len(),
            jobs.len()
        ));
    }
    let redelivered = jobs.values().filter(|j| j.attempts != 1).count();
    let mut missing_results = 0;
    for j in &done {
        let key = &j.result.as_ref().unwrap().key;
        if state.stores.results.head(key).await.is_err() {
            missing_results += 1;
        }
    }
    if missing_results > 0 {
        failures.push(format!("{missing_results} result objects missing"));
    }
    // Raw usage: exactly one item per job, over the hours the run touched.
    let mut hours = Vec::new();
    let mut h = HourKey::of(first);
    while h <= HourKey::of(last) {
        hours.push(h);
        h = h.next();
    }
    let mut raw_items = 0usize;
    let mut seen: HashMap<JobId, usize> = HashMap::new();
    for h in &hours {
        for r in state.stores.usage_log.records_of_hour(*h).await.unwrap() {
            if r.customer_id == customer.customer_id {
                raw_items += 1;
                *seen.entry(r.job_id.clone()).or_default() += 1;
            }
        }
    }
    let dup = seen.values().filter(|&&n| n > 1).count();
    if raw_items != jobs.len() || dup > 0 {
        failures.push(format!(
            "{raw_items} raw usage items for {} jobs ({dup} duplicated)",
            jobs.len()
        ));
    }
    // Rollups: close the run's hours now (the schedule would close them once each has ended and
    // its grace period passed; every job here is finished) and compare.
    for h in &hours {
        state.close_hour(*h).await.expect("close an hour");
    }
    let mut rolled = Totals::default();
    for h in &hours {
        if let Some(t) = state
            .stores
            .rollups
            .get(&customer.customer_id, Period::hour(*h))
            .await
            .unwrap()
        {
            rolled.merge(&t);
        }
    }
    let bytes_out: u64 = done.iter().map(|j| j.result.as_ref().unwrap().bytes).sum();
    if rolled.jobs != jobs.len() as u64
        || rolled.done != done.len() as u64
        || rolled.bytes_out != bytes_out
    {
        failures.push(format!(
            "rollups say {} jobs / {} done / {} bytes out; the jobs say {} / {} / {bytes_out}",
            rolled.jobs,
            rolled.done,
            rolled.bytes_out,
            jobs.len(),
            done.len()
        ));
    }

    // Report.
    let throughput = jobs.len() as f64 / span;
    println!(
        "| rate offered | jobs | done | throughput | submit p50 / p99 | submit→done p50 | p95 | p99 | max | redelivered |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {:.0}/s | {} | {} | {throughput:.1}/s | {:.0} / {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {redelivered} |",
        args.rate,
        jobs.len(),
        done.len(),
        percentile(&submit_ms, 50.0),
        percentile(&submit_ms, 99.0),
        percentile(&lat, 50.0),
        percentile(&lat, 95.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
    );
    println!();
    for (i, (name, _)) in args.pids.iter().enumerate() {
        let cpu = cpu_after[i] - cpu_before[i];
        println!(
            "- CPU of {name}: {cpu:.1} s over the run, {:.1} ms per job",
            cpu * 1000.0 / jobs.len() as f64
        );
    }
    println!(
        "- checks: {} jobs done exactly once ({} redelivered), {} results present, {raw_items} raw usage items, rollups {} jobs / {} done{}",
        done.len(),
        redelivered,
        done.len() - missing_results,
        rolled.jobs,
        rolled.done,
        if failures.is_empty() {
            ", all equal"
        } else {
            ""
        }
    );
    if !submit_errors.is_empty() {
        println!("- submit errors: {submit_errors:?}");
        failures.push(format!(
            "{} submissions failed",
            submit_errors.values().sum::<usize>()
        ));
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}
