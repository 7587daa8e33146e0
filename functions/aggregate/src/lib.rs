//! The aggregate function, run every 5 minutes.
//!
//! 1. For the current hour and the `USAGE_LATE_WINDOW_HOURS` before it, it reads every shard of
//!    raw usage, sums per customer and overwrites the `H#<hour>` rollups.
//! 2. Each hour that has just left that window is aggregated one last time and archived: its raw
//!    records go to the results bucket as gzip JSON Lines, one object per customer, and a marker
//!    records that the hour is archived, so it happens once. A re-run writes identical bytes.
//! 3. The `D#<day>` and `M#<month>` rollups touched are recomputed from the hour and day rollups.
//!
//! Every rollup is recomputed from raw data, never incremented, so running it twice, or two runs
//! at once, gives the same numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use lambda_runtime::LambdaEvent;
use resizer_aws::dynamo::ArchiveMarker;
use resizer_aws::metrics::Unit;
use resizer_aws::{AppState, StoreError};
use resizer_core::usage::{HourKey, Totals, UsageRecord, archive_lines, sum_by_customer};
use serde::Serialize;

/// How far back, beyond the late window, unarchived hours are caught up (after an outage).
pub const ARCHIVE_LOOKBACK_HOURS: i64 = 24;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub hours_scanned: u64,
    pub items_read: u64,
    pub customers_updated: u64,
    pub rollups_written: u64,
    pub hours_archived: Vec<String>,
    pub archive_objects: u64,
    pub duration_ms: u64,
}

pub async fn handler(
    state: &AppState,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<Report, lambda_runtime::Error> {
    Ok(run(state).await?)
}

/// One aggregation pass at the state's clock.
pub async fn run(state: &AppState) -> Result<Report, StoreError> {
    let started = Instant::now();
    let now = state.now();
    let current = HourKey::of(now);
    let window = i64::from(state.config.usage_late_window_hours);
    let mut report = Report::default();
    let mut days: BTreeSet<(String, String)> = BTreeSet::new();

    for back in 0..=window {
        let hour = current.prev(back);
        let records = state.tables.usage_of_hour(hour).await?;
        rollup_hour(state, hour, &records, &mut report, &mut days).await?;
    }

    for back in window + 1..=window + ARCHIVE_LOOKBACK_HOURS {
        let hour = current.prev(back);
        if state.tables.get_archive_marker(hour).await?.is_some() {
            continue;
        }
        let records = state.tables.usage_of_hour(hour).await?;
        rollup_hour(state, hour, &records, &mut report, &mut days).await?;
        let objects = archive_hour(state, hour, records.clone()).await?;
        state
            .tables
            .put_archive_marker(&ArchiveMarker {
                hour: hour.to_string(),
                customers: objects,
                records: records.len() as u64,
                archived_at: now,
            })
            .await?;
        report.hours_archived.push(hour.to_string());
        report.archive_objects += objects;
    }

    let mut months: BTreeSet<(String, String)> = BTreeSet::new();
    for (customer, day) in &days {
        let totals = sum(state
            .tables
            .rollups_with_prefix(customer, &format!("H#{day}"))
            .await?);
        state
            .tables
            .put_rollup(customer, &format!("D#{day}"), &totals, now)
            .await?;
        report.rollups_written += 1;
        months.insert((customer.clone(), day[..7].to_owned()));
    }
    for (customer, month) in &months {
        let totals = sum(state
            .tables
            .rollups_with_prefix(customer, &format!("D#{month}"))
            .await?);
        state
            .tables
            .put_rollup(customer, &format!("M#{month}"), &totals, now)
            .await?;
        report.rollups_written += 1;
    }
    report.customers_updated = days.iter().map(|(c, _)| c).collect::<BTreeSet<_>>().len() as u64;
    report.duration_ms = started.elapsed().as_millis() as u64;
    state.metrics.emit(
        &[],
        &[
            (
                "AggregationMs",
                Unit::Milliseconds,
                report.duration_ms as f64,
            ),
            ("UsageItemsRead", Unit::Count, report.items_read as f64),
            ("RollupsWritten", Unit::Count, report.rollups_written as f64),
            (
                "HoursArchived",
                Unit::Count,
                report.hours_archived.len() as f64,
            ),
        ],
    );
    tracing::info!(
        hours_scanned = report.hours_scanned,
        items_read = report.items_read,
        customers_updated = report.customers_updated,
        rollups_written = report.rollups_written,
        hours_archived = report.hours_archived.len(),
        archive_objects = report.archive_objects,
        duration_ms = report.duration_ms,
        "aggregation done"
    );
    Ok(report)
}

async fn rollup_hour(
    state: &AppState,
    hour: HourKey,
    records: &[UsageRecord],
    report: &mut Report,
    days: &mut BTreeSet<(String, String)>,
) -> Result<(), StoreError> {
    report.hours_scanned += 1;
    report.items_read += records.len() as u64;
    let now = state.now();
    let day = hour.to_string()[..10].to_owned();
    for (customer, totals) in sum_by_customer(records) {
        state
            .tables
            .put_rollup(&customer, &format!("H#{hour}"), &totals, now)
            .await?;
        report.rollups_written += 1;
        days.insert((customer, day.clone()));
    }
    Ok(())
}

/// Writes one gzip JSON Lines object per customer; returns how many.
async fn archive_hour(
    state: &AppState,
    hour: HourKey,
    records: Vec<UsageRecord>,
) -> Result<u64, StoreError> {
    let mut by_customer: BTreeMap<String, Vec<UsageRecord>> = BTreeMap::new();
    for r in records {
        by_customer
            .entry(r.customer_id.clone())
            .or_default()
            .push(r);
    }
    let mut n = 0;
    for (customer, mut rs) in by_customer {
        let body = gzip(&archive_lines(&mut rs));
        state
            .s3
            .put(
                &state.config.results_bucket,
                &hour.archive_key(&customer),
                body,
                "application/gzip",
            )
            .await?;
        n += 1;
    }
    Ok(n)
}

/// Gzip with a fixed header (no name, mtime 0), so equal input gives equal bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

fn sum(rows: Vec<(String, Totals)>) -> Totals {
    let mut t = Totals::default();
    for (_, r) in &rows {
        t.merge(r);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn gzip_is_deterministic_and_round_trips() {
        let data = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
        let a = gzip(&data);
        assert_eq!(a, gzip(&data));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
