//! The scheduled usage aggregation.
//!
//! 1. For the current hour and the `USAGE_LATE_WINDOW_HOURS` before it, it reads every shard of
//!    raw usage, sums per customer and overwrites the hour rollups.
//! 2. Each hour that has just left that window is aggregated one last time and archived: its raw
//!    records go to the archive as gzip JSON Lines, one object per customer, and a marker records
//!    that the hour is archived, so it happens once. A re-run writes identical bytes.
//! 3. The day and month rollups touched are recomputed from the hour and day rollups.
//!
//! Every rollup is recomputed from raw data, never incremented, so running it twice, or two runs
//! at once, gives the same numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use resizer_core::usage::{HourKey, Period, Totals, UsageRecord, archive_lines, sum_by_customer};
use serde::Serialize;

use crate::metrics::Unit;
use crate::ports::ArchiveMarker;
use crate::{App, StoreError};

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

impl App {
    /// One aggregation pass at the app's clock.
    pub async fn aggregate(&self) -> Result<Report, StoreError> {
        let started = Instant::now();
        let current = HourKey::of(self.now());
        let window = i64::from(self.settings.usage_late_window_hours);
        let mut report = Report::default();
        // (customer, day) pairs whose day rollup must be recomputed.
        let mut days: BTreeSet<(String, Period)> = BTreeSet::new();

        for back in 0..=window {
            let hour = current.prev(back);
            let records = self.stores.usage_log.records_of_hour(hour).await?;
            self.rollup_hour(hour, &records, &mut report, &mut days)
                .await?;
        }

        for back in window + 1..=window + ARCHIVE_LOOKBACK_HOURS {
            let hour = current.prev(back);
            if self.stores.rollups.archive_marker(hour).await?.is_some() {
                continue;
            }
            let records = self.stores.usage_log.records_of_hour(hour).await?;
            self.rollup_hour(hour, &records, &mut report, &mut days)
                .await?;
            let count = records.len() as u64;
            let objects = self.archive_hour(hour, records).await?;
            self.stores
                .rollups
                .put_archive_marker(&ArchiveMarker {
                    hour: hour.to_string(),
                    customers: objects,
                    records: count,
                    archived_at: self.now(),
                })
                .await?;
            report.hours_archived.push(hour.to_string());
            report.archive_objects += objects;
        }

        let mut months: BTreeSet<(String, Period)> = BTreeSet::new();
        for (customer, day) in &days {
            self.recompute(customer, *day).await?;
            report.rollups_written += 1;
            months.insert((customer.clone(), day.parent().expect("a day is in a month")));
        }
        for (customer, month) in &months {
            self.recompute(customer, *month).await?;
            report.rollups_written += 1;
        }
        report.customers_updated =
            days.iter().map(|(c, _)| c).collect::<BTreeSet<_>>().len() as u64;
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.metrics.emit(
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
        &self,
        hour: HourKey,
        records: &[UsageRecord],
        report: &mut Report,
        days: &mut BTreeSet<(String, Period)>,
    ) -> Result<(), StoreError> {
        report.hours_scanned += 1;
        report.items_read += records.len() as u64;
        let [period, day, _] = hour.periods();
        for (customer, totals) in sum_by_customer(records) {
            self.stores
                .rollups
                .put(&customer, period, &totals, self.now())
                .await?;
            report.rollups_written += 1;
            days.insert((customer, day));
        }
        Ok(())
    }

    /// Overwrites a day or month rollup with the sum of the rollups inside it.
    async fn recompute(&self, customer: &str, period: Period) -> Result<(), StoreError> {
        let mut totals = Totals::default();
        for (_, t) in self.stores.rollups.within(customer, period).await? {
            totals.merge(&t);
        }
        self.stores
            .rollups
            .put(customer, period, &totals, self.now())
            .await
    }

    /// Writes one gzip JSON Lines object per customer; returns how many.
    async fn archive_hour(
        &self,
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
            self.stores
                .archive
                .put(&hour.archive_key(&customer), body, "application/gzip")
                .await?;
            n += 1;
        }
        Ok(n)
    }
}

/// Gzip with a fixed header (no name, mtime 0), so equal input gives equal bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
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
