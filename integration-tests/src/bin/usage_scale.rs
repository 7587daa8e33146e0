//! The metering scale run behind `make usage-scale` (docs/capacity.md): one hour of synthetic raw
//! usage loaded into the deployed stack's usage table, then closed by the deployed functions
//! exactly as the schedule closes an hour: one synchronous invocation of the aggregate-slice
//! function per slice, each under the function's configured memory size and timeout (the local
//! executor enforces the timeout and reports each invocation's duration and peak memory in its
//! REPORT line).
//!
//! It reports, as Markdown: the items and customers loaded and the items' billed sizes; the
//! close's duration, items per second and the read units DynamoDB reported; each slice
//! invocation's duration and peak memory against the configured limits; the archive objects.
//! It then checks every customer's hour, day and month rollup against what was loaded, and exits
//! non-zero on any difference or failure.
//!
//! Flags: `--items N` (default 1,000,000), `--customers N` (5,000), `--shards N` (32, what
//! docs/capacity.md sizes for 10,000 jobs/s), `--seed N`, `--hours-back N` (where the hour is:
//! default a random hour 330 to 800 hours ago, inside the raw items' TTL and behind the
//! schedule's watermark, so the deployed schedule never closes it too), `--slices N` (the
//! stack's `UsageSlices` otherwise: on a 2-core machine LocalStack's gateway serves fewer slices'
//! page requests at once than AWS would).

use std::time::{Duration, Instant};

use resizer_aws::dynamo::UsageTable;
use resizer_aws::stack::StackInfo;
use resizer_core::usage::HourKey;
use resizer_integration_tests::usage_load;

struct Args {
    items: u64,
    customers: usize,
    shards: u32,
    seed: u64,
    hours_back: Option<i64>,
    slices: Option<u32>,
}

fn parse_args() -> Args {
    let mut a = Args {
        items: 1_000_000,
        customers: 5_000,
        shards: 32,
        seed: 0x5eed,
        hours_back: None,
        slices: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--items" => a.items = v.parse().expect("--items N"),
            "--customers" => a.customers = v.parse().expect("--customers N"),
            "--shards" => a.shards = v.parse().expect("--shards N"),
            "--seed" => a.seed = v.parse().expect("--seed N"),
            "--hours-back" => a.hours_back = Some(v.parse().expect("--hours-back N")),
            "--slices" => a.slices = Some(v.parse().expect("--slices N")),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(a.customers >= 1 && a.items >= a.customers as u64);
    a
}

/// One REPORT line of the slice function: duration, billed memory size, peak memory.
#[derive(Debug, Clone, Copy)]
struct Invocation {
    duration_ms: f64,
    memory_size_mb: u64,
    max_memory_mb: u64,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(name)? + name.len();
    line[start..].split_whitespace().next()
}

fn parse_report(line: &str) -> Option<Invocation> {
    if !line.starts_with("REPORT") {
        return None;
    }
    Some(Invocation {
        duration_ms: field(line, "\tDuration: ")?.parse().ok()?,
        memory_size_mb: field(line, "Memory Size: ")?.parse().ok()?,
        max_memory_mb: field(line, "Max Memory Used: ")?.parse().ok()?,
    })
}

async fn reports_since(
    sdk: &aws_config::SdkConfig,
    function: &str,
    since: time::OffsetDateTime,
) -> Vec<Invocation> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(sdk);
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let Ok(page) = logs
            .filter_log_events()
            .log_group_name(format!("/aws/lambda/{function}"))
            .start_time((since.unix_timestamp_nanos() / 1_000_000) as i64)
            .set_next_token(token.take())
            .send()
            .await
        else {
            return out;
        };
        for e in page.events() {
            out.extend(
                e.message()
                    .unwrap_or_default()
                    .lines()
                    .filter_map(parse_report),
            );
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return out,
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let stack =
        std::env::var("RESIZER_STACK").expect("RESIZER_STACK (run through make usage-scale)");
    let sdk = resizer_aws::load_sdk_config().await;
    let info = StackInfo::describe(&sdk, &stack)
        .await
        .unwrap_or_else(|e| panic!("cannot read stack {stack}: {e}"));
    let res = info.resources().expect("the stack's resources");
    let mut settings = info.settings().expect("settings");
    if let Some(n) = args.slices {
        settings.usage_slices = n;
    }
    let slice_fn = res
        .aggregate_slice_function
        .clone()
        .expect("the stack outputs its aggregate-slice function");
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let conf = lambda
        .get_function_configuration()
        .function_name(&slice_fn)
        .send()
        .await
        .expect("the slice function's configuration");
    let (memory_mb, timeout_s) = (
        conf.memory_size().unwrap_or_default(),
        conf.timeout().unwrap_or_default(),
    );
    let back = args
        .hours_back
        .unwrap_or_else(|| 330 + (uuid::Uuid::new_v4().as_u128() % 470) as i64);
    let hour = HourKey::of(time::OffsetDateTime::now_utc() - time::Duration::hours(back));
    eprintln!(
        "usage-scale: {} items, {} customers, {} shards, hour {hour}; slice function {slice_fn} ({memory_mb} MB, {timeout_s} s), {} slices",
        args.items, args.customers, args.shards, settings.usage_slices
    );

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = UsageTable::new(dynamodb, &res.usage_table, args.shards);
    let load_started = Instant::now();
    let loaded = usage_load::load(&table, hour, args.customers, args.items, args.seed, |n| {
        let s = load_started.elapsed().as_secs_f64();
        eprintln!(
            "  loaded {n} items in {s:.0} s ({:.0} items/s)",
            n as f64 / s.max(0.001)
        );
    })
    .await
    .unwrap_or_else(|e| panic!("loading: {e}"));

    let app = resizer_aws::wire::app(&sdk, &res, settings.clone());
    let close_started_at = time::OffsetDateTime::now_utc() - time::Duration::seconds(2);
    let t = Instant::now();
    let closed = app.close_hour(hour).await;
    let close_wall = t.elapsed();
    let report = match closed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("usage-scale: closing the hour failed: {e}");
            std::process::exit(1);
        }
    };
    // The REPORT lines reach the logs a moment after the answers.
    let mut invocations = Vec::new();
    for _ in 0..30 {
        invocations = reports_since(&sdk, &slice_fn, close_started_at).await;
        if invocations.len() >= report.slices as usize {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let problems = usage_load::check_rollups(app.stores.rollups.clone(), &loaded)
        .await
        .unwrap_or_else(|e| panic!("checking: {e}"));

    let mut durations: Vec<f64> = invocations.iter().map(|i| i.duration_ms).collect();
    durations.sort_by(f64::total_cmp);
    let peak = invocations
        .iter()
        .map(|i| i.max_memory_mb)
        .max()
        .unwrap_or(0);
    let configured = invocations
        .first()
        .map_or(i64::from(memory_mb), |i| i.memory_size_mb as i64);
    let secs = close_wall.as_secs_f64();
    println!(
        "### Usage aggregation scale run ({})",
        time::OffsetDateTime::now_utc().date()
    );
    println!();
    println!("| what | value |");
    println!("|---|---|");
    println!(
        "| raw items loaded | {} ({} customers, skewed; {} shards) |",
        loaded.items,
        loaded.expected.len(),
        args.shards
    );
    println!(
        "| billed item size | mean {:.0} B, min {} B, max {} B; {:.1} MB in all |",
        loaded.mean_item_bytes(),
        loaded.min_item_bytes,
        loaded.max_item_bytes,
        loaded.item_bytes as f64 / 1e6
    );
    println!(
        "| load | {:.0} s ({:.0} items/s through BatchWriteItem) |",
        loaded.duration.as_secs_f64(),
        loaded.items as f64 / loaded.duration.as_secs_f64()
    );
    println!(
        "| slice function | {configured} MB, timeout {timeout_s} s; {} slices at once |",
        report.slices
    );
    println!("| close of the hour (wall) | {secs:.1} s |");
    println!(
        "| items per second | {:.0} |",
        report.items_read as f64 / secs
    );
    println!(
        "| slice invocations | {} REPORT lines: duration min {:.1} s, median {:.1} s, max {:.1} s (slowest slice by its own clock {:.1} s) |",
        invocations.len(),
        percentile(&durations, 0.0) / 1000.0,
        percentile(&durations, 0.5) / 1000.0,
        percentile(&durations, 1.0) / 1000.0,
        report.slowest_slice_ms as f64 / 1000.0
    );
    println!("| peak memory of a slice process | {peak} MB of {configured} MB |");
    println!(
        "| items read / skipped | {} / {} |",
        report.items_read, report.items_skipped
    );
    println!(
        "| queries / read units reported | {} / {:.0} RRU ({:.1} RRU per 1,000 items) |",
        report.queries,
        report.read_units,
        report.read_units * 1000.0 / report.items_read.max(1) as f64
    );
    println!(
        "| read units from the item sizes | {:.0} RRU (bytes / 4 KB x 0.5, eventually consistent) |",
        loaded.item_bytes as f64 / 4096.0 * 0.5
    );
    println!(
        "| archive | {} objects, {:.1} MB gzip |",
        report.archive_objects,
        report.archive_bytes as f64 / 1e6
    );
    println!("| rollups written | {} |", report.rollups_written);
    println!(
        "| rollups equal the loaded items | {} |",
        if problems.is_empty() {
            format!(
                "yes, all {} customers (hour, day, month)",
                loaded.expected.len()
            )
        } else {
            format!("NO: {} differences", problems.len())
        }
    );
    let mut failed = false;
    if !problems.is_empty() {
        for p in problems.iter().take(20) {
            eprintln!("  {p}");
        }
        failed = true;
    }
    if report.items_read != loaded.items || report.items_skipped != 0 {
        eprintln!(
            "usage-scale: read {} items ({} skipped), loaded {}",
            report.items_read, report.items_skipped, loaded.items
        );
        failed = true;
    }
    if invocations.len() < report.slices as usize {
        eprintln!(
            "usage-scale: {} REPORT lines for {} slices",
            invocations.len(),
            report.slices
        );
    }
    if peak > configured as u64 {
        eprintln!("usage-scale: a slice used {peak} MB, over its {configured} MB");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}
