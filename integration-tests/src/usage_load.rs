//! A synthetic hour of raw usage, loaded straight into the usage table, and the check that the
//! aggregation's rollups equal it exactly: the small version runs in `make test`
//! (`integration-tests/tests/metering.rs`), the large one is `make usage-scale`
//! (`src/bin/usage_scale.rs`, docs/capacity.md).
//!
//! The records are what the resize function writes (the same item encoding, through
//! [`UsageTable::item`]), spread over `customers` fresh customer ids with a skew like real traffic
//! (a few customers send most jobs) and over the table's shards by job id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use resizer_app::ports::Rollups;
use resizer_aws::dynamo::UsageTable;
use resizer_core::job::JobId;
use resizer_core::key::generate_customer_id;
use resizer_core::transform::Format;
use resizer_core::usage::{HourKey, Outcome, Totals, UsageRecord};
use tokio::sync::Semaphore;

use crate::{Error, Result};

/// Batches of 25 (DynamoDB's BatchWriteItem limit) in flight at once while loading.
const LOAD_CONCURRENCY: usize = 24;

/// What was loaded: the expected rollup of every customer, and the sizes DynamoDB bills.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub hour: HourKey,
    pub expected: HashMap<String, Totals>,
    pub items: u64,
    /// Sum of the items' sizes as DynamoDB bills them (attribute names plus values).
    pub item_bytes: u64,
    pub min_item_bytes: u64,
    pub max_item_bytes: u64,
    pub duration: Duration,
}

impl Loaded {
    pub fn mean_item_bytes(&self) -> f64 {
        self.item_bytes as f64 / self.items.max(1) as f64
    }
}

/// A small deterministic generator (xorshift64*), so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Customer `i` of `n` is picked with weight about 1/(i+1): the top 1 % send about half the jobs.
fn skewed(rng: &mut Rng, n: usize) -> usize {
    // Inverse of the harmonic CDF, approximately: exp(u * ln(n+1)) - 1.
    let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    let i = ((n as f64 + 1.0).ln() * u).exp() - 1.0;
    (i as usize).min(n - 1)
}

/// The size DynamoDB bills for an item: each attribute's name plus its value (numbers about one
/// byte per two significant digits, plus one).
pub fn billed_size(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> u64 {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    item.iter()
        .map(|(k, v)| {
            k.len() as u64
                + match v {
                    A::S(s) => s.len() as u64,
                    A::N(n) => (n.trim_start_matches('-').len() as u64).div_ceil(2) + 1,
                    A::Bool(_) | A::Null(_) => 1,
                    _ => 8,
                }
        })
        .sum()
}

/// A record for customer `customer` recorded inside `hour`.
fn record(rng: &mut Rng, customer: &str, hour: HourKey) -> UsageRecord {
    let recorded = hour.start() + time::Duration::milliseconds(rng.below(3_600_000) as i64);
    let failed = rng.below(50) == 0;
    let (w, h) = (200 + rng.below(3800), 200 + rng.below(3800));
    let bytes_in = 20_000 + rng.below(2_000_000);
    UsageRecord {
        customer_id: customer.to_owned(),
        job_id: JobId::generate(),
        outcome: if failed {
            Outcome::Failed
        } else {
            Outcome::Done
        },
        error_code: failed.then(|| "invalid_image".into()),
        bytes_in,
        bytes_out: if failed { 0 } else { bytes_in / 8 },
        pixels_in: w * h,
        pixels_out: if failed { 0 } else { (w / 4) * (h / 4) },
        cpu_ms: 5 + rng.below(200),
        wall_ms: 20 + rng.below(400),
        format_in: Some(Format::Jpeg),
        format_out: (!failed).then_some(Format::Webp),
        job_created_at: recorded - time::Duration::milliseconds(rng.below(5_000) as i64),
        recorded_at: recorded,
    }
}

/// Writes `items` raw records of `hour` for `customers` fresh customers into `table` (with its
/// shard count), `seed` making it repeatable; `progress` is called now and then with the items
/// written so far.
pub async fn load(
    table: &UsageTable,
    hour: HourKey,
    customers: usize,
    items: u64,
    seed: u64,
    progress: impl Fn(u64),
) -> Result<Loaded> {
    let started = Instant::now();
    let ids: Vec<String> = (0..customers).map(|_| generate_customer_id()).collect();
    let mut rng = Rng(seed | 1);
    let mut expected: HashMap<String, Totals> = HashMap::new();
    let (mut item_bytes, mut min_b, mut max_b) = (0u64, u64::MAX, 0u64);
    let client = table.client().clone();
    let name = table.name().to_owned();
    let gate = Arc::new(Semaphore::new(LOAD_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    let mut batch = Vec::with_capacity(25);
    let mut written = 0u64;
    // Every customer has at least one record; the rest follow the skew.
    for n in 0..items {
        let c = if (n as usize) < customers {
            &ids[n as usize]
        } else {
            &ids[skewed(&mut rng, customers)]
        };
        let r = record(&mut rng, c, hour);
        expected
            .entry(r.customer_id.clone())
            .or_default()
            .add_record(&r);
        let item = table.item(&r).map_err(|e| Error::msg(e.to_string()))?;
        let size = billed_size(&item);
        item_bytes += size;
        min_b = min_b.min(size);
        max_b = max_b.max(size);
        batch.push(
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build(),
        );
        if batch.len() == 25 || n + 1 == items {
            let permit = gate.clone().acquire_owned().await.expect("open");
            let (client, name) = (client.clone(), name.clone());
            let requests = std::mem::take(&mut batch);
            tasks.spawn(async move {
                let r = write_all(&client, &name, requests).await;
                drop(permit);
                r
            });
            while let Some(done) = tasks.try_join_next() {
                written += done.map_err(|e| Error::msg(e.to_string()))??;
            }
            if n % 50_000 < 25 {
                progress(written);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        written += done.map_err(|e| Error::msg(e.to_string()))??;
    }
    progress(written);
    if written != items {
        return Err(Error::msg(format!("wrote {written} of {items} items")));
    }
    Ok(Loaded {
        hour,
        expected,
        items,
        item_bytes,
        min_item_bytes: min_b,
        max_item_bytes: max_b,
        duration: started.elapsed(),
    })
}

/// One BatchWriteItem, its unprocessed items written again until none are left.
async fn write_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut requests: Vec<WriteRequest>,
) -> Result<u64> {
    let n = requests.len() as u64;
    let mut backoff = Duration::from_millis(50);
    while !requests.is_empty() {
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await?;
        requests = out
            .unprocessed_items()
            .and_then(|m| m.get(table))
            .cloned()
            .unwrap_or_default();
        if !requests.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
    Ok(n)
}

/// Every loaded customer's hour, day and month rollup against what was loaded. The customers are
/// fresh, so the day and the month hold this hour only. Returns the mismatches (none is a pass).
pub async fn check_rollups(rollups: Arc<dyn Rollups>, loaded: &Loaded) -> Result<Vec<String>> {
    let periods = loaded.hour.periods();
    let gate = Arc::new(Semaphore::new(32));
    let mut checks = tokio::task::JoinSet::new();
    for (customer, want) in &loaded.expected {
        let permit = gate.clone().acquire_owned().await.expect("open");
        let (rollups, customer, want) = (rollups.clone(), customer.clone(), *want);
        checks.spawn(async move {
            let mut problems = Vec::new();
            for p in periods {
                match rollups.get(&customer, p).await {
                    Ok(got) if got == Some(want) => {}
                    Ok(got) => {
                        problems.push(format!("{customer} {p}: rollup {got:?}, loaded {want:?}"))
                    }
                    Err(e) => problems.push(format!("{customer} {p}: {e}")),
                }
            }
            drop(permit);
            problems
        });
    }
    let mut problems = Vec::new();
    while let Some(done) = checks.join_next().await {
        problems.extend(done.map_err(|e| Error::msg(e.to_string()))?);
    }
    problems.sort();
    Ok(problems)
}
