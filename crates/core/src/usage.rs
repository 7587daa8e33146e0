//! Usage metering: the raw record every job outcome leaves, its keys, and the rollup maths.
//!
//! Raw items live under `H#<yyyy-mm-ddThh>#<shard>` / `<customer_id>#<job_id>`. The hour is the
//! hour the outcome was *recorded* (as cloud providers bill): a job that ends hours after it was
//! created (a backlog, an outage, a re-driven dead letter) lands in the hour it ended, so an hour
//! stops changing once its grace period has passed and can be closed (rolled up and archived)
//! once. A job has one outcome (its finish is conditional), so it has one item. Rollups (`H#…`,
//! `D#…`, `M#…` per customer) are sums recomputed from raw data, so recomputing them is
//! idempotent.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::job::{Job, JobId, JobStatus};
use crate::transform::Format;

/// How long raw items live (the usage table's TTL). The archive is the long-term record.
pub const RAW_TTL: time::Duration = time::Duration::days(35);
/// Default number of partitions one hour of raw items is spread over.
pub const DEFAULT_SHARDS: u32 = 16;
/// The most partitions a writer may spread an hour over (the template's `UsageShards` maximum).
/// The aggregator reads all of them, whatever the configured count, so that changing the count
/// (in either direction, in any order of the functions' updates) never hides an item. An empty
/// partition costs one 0.5-RRU query.
pub const MAX_USAGE_SHARDS: u32 = 128;
/// The most slices an hour's aggregation can be cut into (two base-36 characters of the customer
/// id; see [`SkRange::slice`]).
pub const MAX_SLICES: u32 = 36 * 36;
/// Where the usage archive's objects live in their bucket.
pub const ARCHIVE_PREFIX: &str = "usage/";
/// Largest ranges `GET /v1/usage` serves, per granularity.
pub const MAX_HOURS: i64 = 7 * 24;
pub const MAX_DAYS: i64 = 400;
pub const MAX_MONTHS: i64 = 36;

/// The outcome of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Done,
    Failed,
}

/// One raw usage item: one per job outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub customer_id: String,
    pub job_id: JobId,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub pixels_in: u64,
    pub pixels_out: u64,
    pub cpu_ms: u64,
    pub wall_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_in: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_out: Option<Format>,
    /// When the job was created.
    #[serde(with = "time::serde::rfc3339")]
    pub job_created_at: OffsetDateTime,
    /// When the outcome was recorded: decides the hour (and so the item's key).
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

impl UsageRecord {
    /// The hour the outcome was recorded in: the hour it is metered and billed in.
    pub fn hour(&self) -> HourKey {
        HourKey::of(self.recorded_at)
    }

    /// The partition key: `H#<hour>#<shard>`.
    pub fn pk(&self, shards: u32) -> String {
        raw_pk(&self.hour(), shard_for(&self.job_id, shards))
    }

    /// The sort key: `<customer_id>#<job_id>`.
    pub fn sk(&self) -> String {
        format!("{}#{}", self.customer_id, self.job_id)
    }

    /// Epoch seconds at which the raw item may expire.
    pub fn expires_at(&self) -> i64 {
        (self.recorded_at + RAW_TTL).unix_timestamp()
    }

    /// The usage of a finished job: what went in (from the job's input), what came out (its
    /// result, if done), why it failed (if failed), and the work it took. Recorded at the job's
    /// `updated_at`, the moment it finished.
    pub fn for_job(job: &Job, cpu_ms: u64, wall_ms: u64) -> Self {
        debug_assert!(job.status.is_terminal(), "usage of a {} job", job.status);
        let result = job
            .result
            .as_ref()
            .filter(|_| job.status == JobStatus::Done);
        Self {
            customer_id: job.customer_id.clone(),
            job_id: job.job_id.clone(),
            outcome: if result.is_some() {
                Outcome::Done
            } else {
                Outcome::Failed
            },
            error_code: job.error.as_ref().map(|e| e.code.clone()),
            bytes_in: job.input.bytes,
            bytes_out: result.map_or(0, |r| r.bytes),
            pixels_in: u64::from(job.input.width) * u64::from(job.input.height),
            pixels_out: result.map_or(0, |r| u64::from(r.width) * u64::from(r.height)),
            cpu_ms,
            wall_ms,
            format_in: Some(job.input.format),
            format_out: result.map(|r| r.format),
            job_created_at: job.created_at,
            recorded_at: job.updated_at,
        }
    }
}

/// The partition key of one shard of one hour.
pub fn raw_pk(hour: &HourKey, shard: u32) -> String {
    format!("H#{hour}#{shard}")
}

/// The shard of a job: FNV-1a of its id, so it is stable across processes and releases.
pub fn shard_for(job_id: &JobId, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job_id.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u32
}

/// A UTC hour, printed `yyyy-mm-ddThh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HourKey(PrimitiveDateTime);

impl HourKey {
    pub fn of(ts: OffsetDateTime) -> Self {
        let utc = ts.to_offset(UtcOffset::UTC);
        let time = Time::from_hms(utc.hour(), 0, 0).expect("valid hour");
        Self(PrimitiveDateTime::new(utc.date(), time))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let date = Date::parse(s.get(..10)?, format_description!("[year]-[month]-[day]")).ok()?;
        let rest = s.get(10..)?;
        let hour: u8 = rest.strip_prefix('T')?.parse().ok()?;
        if rest.len() != 3 {
            return None;
        }
        Some(Self(PrimitiveDateTime::new(
            date,
            Time::from_hms(hour, 0, 0).ok()?,
        )))
    }

    pub fn start(self) -> OffsetDateTime {
        self.0.assume_utc()
    }

    pub fn end(self) -> OffsetDateTime {
        self.start() + time::Duration::HOUR
    }

    pub fn date(self) -> Date {
        self.0.date()
    }

    pub fn hour(self) -> u8 {
        self.0.hour()
    }

    pub fn prev(self, n: i64) -> Self {
        Self(self.0 - time::Duration::hours(n))
    }

    pub fn next(self) -> Self {
        Self(self.0 + time::Duration::HOUR)
    }

    /// The rollup periods this hour contributes to: itself, its day and its month.
    pub fn periods(self) -> [Period; 3] {
        let hour = Period::hour(self);
        let day = hour.parent().expect("an hour is in a day");
        let month = day.parent().expect("a day is in a month");
        [hour, day, month]
    }

    /// The archive "directory" of one customer's hour, in Hive layout (the Athena table's
    /// partitions): `usage/customer=<id>/day=<yyyy-mm-dd>/hour=<hh>/`.
    pub fn archive_dir(self, customer_id: &str) -> String {
        format!(
            "{ARCHIVE_PREFIX}customer={customer_id}/day={}/hour={:02}/",
            date_str(self.date()),
            self.hour()
        )
    }

    /// The archive object key of part `part` of one customer's raw records of this hour.
    pub fn archive_key(self, customer_id: &str, part: u32) -> String {
        format!("{}part-{part:05}.jsonl.gz", self.archive_dir(customer_id))
    }
}

impl Serialize for HourKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HourKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HourKey::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an hour (yyyy-mm-ddThh): {s:?}")))
    }
}

/// A range of raw usage sort keys: from `from` (inclusive) to `to` (exclusive); `None` is
/// unbounded. An hour's aggregation is cut into slices of the customer-id space, so that each
/// slice holds whole customers: every customer's records of the hour, from every shard, are in
/// exactly one slice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SkRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl SkRange {
    /// Every sort key.
    pub fn all() -> Self {
        Self {
            from: None,
            to: None,
        }
    }

    /// Slice `index` of `count` (1..=[`MAX_SLICES`]): the customer ids are `cus_` and base-36
    /// characters, so the boundaries are evenly spaced two-character prefixes. The first slice
    /// starts at the lowest possible key and the last ends past the highest, so every key (a
    /// malformed one too) is in exactly one slice. A boundary is never a whole sort key (those
    /// hold a `#`), so a customer is never split.
    pub fn slice(index: u32, count: u32) -> Self {
        let count = count.clamp(1, MAX_SLICES);
        let index = index.min(count - 1);
        let boundary = |i: u32| -> Option<String> {
            if i == 0 || i >= count {
                return None;
            }
            let n = i * MAX_SLICES / count;
            let digit = |d: u32| char::from(BASE36[d as usize]);
            Some(format!("cus_{}{}", digit(n / 36), digit(n % 36)))
        };
        Self {
            from: boundary(index),
            to: boundary(index + 1),
        }
    }

    pub fn contains(&self, sk: &str) -> bool {
        self.from.as_deref().is_none_or(|f| sk >= f) && self.to.as_deref().is_none_or(|t| sk < t)
    }
}

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

impl fmt::Display for HourKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{:02}", date_str(self.date()), self.hour())
    }
}

fn date_str(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The summed fields of a rollup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub jobs: u64,
    pub done: u64,
    pub failed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub pixels_in: u64,
    pub pixels_out: u64,
    pub cpu_ms: u64,
}

impl Totals {
    pub const FIELDS: [&'static str; 8] = [
        "jobs",
        "done",
        "failed",
        "bytes_in",
        "bytes_out",
        "pixels_in",
        "pixels_out",
        "cpu_ms",
    ];

    /// Adds one record. Sums saturate: a corrupt item can make a total wrong, never the run fail.
    pub fn add_record(&mut self, r: &UsageRecord) {
        let (done, failed) = match r.outcome {
            Outcome::Done => (1, 0),
            Outcome::Failed => (0, 1),
        };
        self.merge(&Totals {
            jobs: 1,
            done,
            failed,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            pixels_in: r.pixels_in,
            pixels_out: r.pixels_out,
            cpu_ms: r.cpu_ms,
        });
    }

    pub fn merge(&mut self, o: &Totals) {
        let mut v = self.values();
        for (a, b) in v.iter_mut().zip(o.values()) {
            *a = a.saturating_add(b);
        }
        *self = Self::from_values(v);
    }

    /// The fields in [`Totals::FIELDS`] order.
    pub fn values(&self) -> [u64; 8] {
        [
            self.jobs,
            self.done,
            self.failed,
            self.bytes_in,
            self.bytes_out,
            self.pixels_in,
            self.pixels_out,
            self.cpu_ms,
        ]
    }

    pub fn from_values(v: [u64; 8]) -> Self {
        Self {
            jobs: v[0],
            done: v[1],
            failed: v[2],
            bytes_in: v[3],
            bytes_out: v[4],
            pixels_in: v[5],
            pixels_out: v[6],
            cpu_ms: v[7],
        }
    }
}

/// Sums raw records per customer.
pub fn sum_by_customer<'a>(
    records: impl IntoIterator<Item = &'a UsageRecord>,
) -> BTreeMap<String, Totals> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for r in records {
        out.entry(r.customer_id.clone()).or_default().add_record(r);
    }
    out
}

/// Rollup granularity, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
    Month,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The sort-key prefix: `H#`, `D#` or `M#`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Hour => "H#",
            Self::Day => "D#",
            Self::Month => "M#",
        }
    }

    /// The rollup period containing `ts`.
    pub fn period_of(self, ts: OffsetDateTime) -> Period {
        Period {
            granularity: self,
            start: self.floor(ts),
        }
    }

    /// The next coarser granularity: hour → day → month.
    pub fn coarser(self) -> Option<Self> {
        match self {
            Self::Hour => Some(Self::Day),
            Self::Day => Some(Self::Month),
            Self::Month => None,
        }
    }

    /// The next finer granularity: month → day → hour.
    pub fn finer(self) -> Option<Self> {
        match self {
            Self::Hour => None,
            Self::Day => Some(Self::Hour),
            Self::Month => Some(Self::Day),
        }
    }

    /// Start of the period containing `ts`.
    pub fn floor(self, ts: OffsetDateTime) -> OffsetDateTime {
        let ts = ts.to_offset(UtcOffset::UTC);
        let d = ts.date();
        match self {
            Self::Hour => HourKey::of(ts).start(),
            Self::Day => d.midnight().assume_utc(),
            Self::Month => Date::from_calendar_date(d.year(), d.month(), 1)
                .expect("first of month")
                .midnight()
                .assume_utc(),
        }
    }

    /// Start of the period after the one starting at `start`.
    pub fn step(self, start: OffsetDateTime) -> OffsetDateTime {
        match self {
            Self::Hour => start + time::Duration::HOUR,
            Self::Day => start + time::Duration::DAY,
            Self::Month => {
                let d = start.date();
                let (y, m) = if d.month() == Month::December {
                    (d.year() + 1, Month::January)
                } else {
                    (d.year(), d.month().next())
                };
                Date::from_calendar_date(y, m, 1)
                    .expect("first of month")
                    .midnight()
                    .assume_utc()
            }
        }
    }

    fn max_periods(self) -> i64 {
        match self {
            Self::Hour => MAX_HOURS,
            Self::Day => MAX_DAYS,
            Self::Month => MAX_MONTHS,
        }
    }

    fn limit_text(self) -> &'static str {
        match self {
            Self::Hour => "168 hours (7 days)",
            Self::Day => "400 days",
            Self::Month => "36 months",
        }
    }
}

/// One rollup period of one granularity: the rollups table's sort key, `H#2026-11-25T13`,
/// `D#2026-11-25` or `M#2026-11` (UTC). The aggregator, the adapter and the API all use this type;
/// nobody formats or slices a key by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    granularity: Granularity,
    start: OffsetDateTime,
}

impl Period {
    pub fn hour(hour: HourKey) -> Self {
        Granularity::Hour.period_of(hour.start())
    }

    pub fn granularity(self) -> Granularity {
        self.granularity
    }

    pub fn start(self) -> OffsetDateTime {
        self.start
    }

    /// The period of the next coarser granularity that contains this one.
    pub fn parent(self) -> Option<Self> {
        Some(self.granularity.coarser()?.period_of(self.start))
    }

    /// The sort-key prefix shared by every period of the next finer granularity inside this one:
    /// `H#2026-11-25` for a day, `D#2026-11` for a month.
    pub fn children_prefix(self) -> Option<String> {
        let finer = self.granularity.finer()?;
        Some(format!("{}{}", finer.prefix(), self.label()))
    }

    /// The key without its granularity prefix, as the API shows it: `2026-11-25T13`.
    pub fn label(self) -> String {
        let d = self.start.date();
        match self.granularity {
            Granularity::Hour => format!("{}T{:02}", date_str(d), self.start.hour()),
            Granularity::Day => date_str(d),
            Granularity::Month => format!("{:04}-{:02}", d.year(), u8::from(d.month())),
        }
    }

    /// Parses a sort key; only the canonical form of a period's start is accepted.
    pub fn parse(key: &str) -> Option<Self> {
        let granularity = [Granularity::Hour, Granularity::Day, Granularity::Month]
            .into_iter()
            .find(|g| key.starts_with(g.prefix()))?;
        let label = &key[2..];
        let start = match granularity {
            Granularity::Hour => HourKey::parse(label)?.start(),
            Granularity::Day => Date::parse(label, format_description!("[year]-[month]-[day]"))
                .ok()?
                .midnight()
                .assume_utc(),
            Granularity::Month => Date::parse(
                &format!("{label}-01"),
                format_description!("[year]-[month]-[day]"),
            )
            .ok()?
            .midnight()
            .assume_utc(),
        };
        let p = granularity.period_of(start);
        (p.to_string() == key).then_some(p)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.granularity.prefix(), self.label())
    }
}

/// A validated usage query: whole periods from `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRange {
    pub granularity: Granularity,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl UsageRange {
    /// Parses `from`, `to` (RFC 3339 timestamps or `yyyy-mm-dd` dates, UTC) and `granularity`
    /// (default `day`). `from` defaults to the start of the current month and `to` to the end of
    /// the current period. Both are widened to whole periods.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        granularity: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Self, crate::transform::ParamError> {
        use crate::transform::ParamError;
        let granularity = match granularity {
            None => Granularity::Day,
            Some(g) => Granularity::parse(g).ok_or_else(|| {
                ParamError::new(
                    "granularity",
                    format!("granularity must be one of hour, day, month, got {g:?}"),
                )
            })?,
        };
        let parse_ts = |name: &str, v: &str| {
            parse_instant(v).ok_or_else(|| {
                ParamError::new(
                    name,
                    format!(
                        "{name} must be an RFC 3339 timestamp (2026-11-25T13:00:00Z) or a date \
                         (2026-11-25), got {v:?}"
                    ),
                )
            })
        };
        let from = match from {
            Some(v) => parse_ts("from", v)?,
            None => Granularity::Month.floor(now),
        };
        let to = match to {
            Some(v) => parse_ts("to", v)?,
            None => granularity.step(granularity.floor(now)),
        };
        let from = granularity.floor(from);
        // `to` is exclusive: widen it to the end of the period it falls in, unless on a boundary.
        let to = if granularity.floor(to) == to {
            to
        } else {
            granularity.step(granularity.floor(to))
        };
        if to <= from {
            return Err(ParamError::new("to", "to must be after from"));
        }
        let mut n = 0;
        let mut t = from;
        while t < to {
            n += 1;
            if n > granularity.max_periods() {
                return Err(ParamError::new(
                    "to",
                    format!(
                        "the range from..to spans more than {} at granularity {}",
                        granularity.limit_text(),
                        granularity.as_str()
                    ),
                ));
            }
            t = granularity.step(t);
        }
        Ok(Self {
            granularity,
            from,
            to,
        })
    }

    /// The first and last period of the range (inclusive), for a `BETWEEN` query on the rollups
    /// table.
    pub fn sort_key_bounds(&self) -> (Period, Period) {
        let last = self.to - time::Duration::SECOND;
        (
            self.granularity.period_of(self.from),
            self.granularity.period_of(last),
        )
    }
}

fn parse_instant(v: &str) -> Option<OffsetDateTime> {
    if let Ok(ts) = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Some(ts.to_offset(UtcOffset::UTC));
    }
    Date::parse(v, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// Appends one record as a JSON line: the archive's format (one line per job outcome, the
/// columns of the Athena table in `template.yaml`).
pub fn archive_line(r: &UsageRecord, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, r).expect("a usage record always serialises");
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(customer: &str, created: OffsetDateTime, outcome: Outcome, n: u64) -> UsageRecord {
        UsageRecord {
            customer_id: customer.into(),
            job_id: JobId::generate(),
            outcome,
            error_code: (outcome == Outcome::Failed).then(|| "invalid_image".into()),
            bytes_in: 1000 * n,
            bytes_out: 100 * n,
            pixels_in: 10_000 * n,
            pixels_out: 1_000 * n,
            cpu_ms: n,
            wall_ms: 2 * n,
            format_in: Some(Format::Jpeg),
            format_out: (outcome == Outcome::Done).then_some(Format::Webp),
            job_created_at: created,
            recorded_at: created + time::Duration::seconds(3),
        }
    }

    #[test]
    fn keys() {
        let r = record(
            "cus_a",
            datetime!(2026-11-25 13:59:59 UTC),
            Outcome::Done,
            1,
        );
        // Created at 13:59:59, recorded at 14:00:02: metered in the hour it was recorded.
        assert_eq!(r.hour().to_string(), "2026-11-25T14");
        let pk = r.pk(16);
        assert!(pk.starts_with("H#2026-11-25T14#"), "{pk}");
        let shard: u32 = pk.rsplit('#').next().unwrap().parse().unwrap();
        assert!(shard < 16);
        assert_eq!(r.sk(), format!("cus_a#{}", r.job_id));
        assert_eq!(
            r.expires_at(),
            (datetime!(2026-11-25 14:00:02 UTC) + time::Duration::days(35)).unix_timestamp()
        );
        // A job that ends hours after it was created lands in the hour it ended.
        let mut late = r.clone();
        late.recorded_at = datetime!(2026-11-25 16:30:00 UTC);
        assert!(late.pk(16).starts_with("H#2026-11-25T16#"));
        assert_eq!(late.sk(), r.sk());
        assert_eq!(
            HourKey::of(datetime!(2026-11-25 13:00:00 +02:00)).to_string(),
            "2026-11-25T11"
        );
    }

    #[test]
    fn slices_cover_every_key_once_and_keep_customers_whole() {
        for count in [1, 2, 3, 16, 100, MAX_SLICES] {
            let slices: Vec<SkRange> = (0..count).map(|i| SkRange::slice(i, count)).collect();
            assert_eq!(slices[0].from, None);
            assert_eq!(slices[count as usize - 1].to, None);
            for w in slices.windows(2) {
                assert_eq!(w[0].to, w[1].from, "contiguous");
                assert!(w[1].from.is_some());
            }
            for sk in [
                "",
                "!",
                "cus_",
                "cus_00#x",
                "cus_0",
                "cus_a0#job",
                "cus_zzzzzzzzzzzzzzzz#j",
                "cus_Z#j",
                "zzz",
            ] {
                let n = slices.iter().filter(|s| s.contains(sk)).count();
                assert_eq!(n, 1, "{sk:?} in {n} of {count} slices");
            }
        }
        // Generated ids spread evenly, and a customer's keys share its slice.
        let mut counts = [0u32; 16];
        for _ in 0..16_000 {
            let c = crate::key::generate_customer_id();
            let i = (0..16)
                .find(|&i| SkRange::slice(i, 16).contains(&format!("{c}#a")))
                .unwrap();
            assert!(SkRange::slice(i, 16).contains(&format!("{c}#zzzz")));
            assert!(SkRange::slice(i, 16).contains(&c));
            counts[i as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert!(SkRange::all().contains("anything"));
    }

    #[test]
    fn shards_spread_evenly() {
        let mut counts = [0u32; 16];
        for _ in 0..16_000 {
            counts[shard_for(&JobId::generate(), 16) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(shard_for(&JobId::generate(), 1), 0);
    }

    #[test]
    fn hour_keys_parse_and_step() {
        let h = HourKey::parse("2026-12-31T23").unwrap();
        assert_eq!(h.next().to_string(), "2027-01-01T00");
        assert_eq!(h.prev(24).to_string(), "2026-12-30T23");
        assert_eq!(
            h.periods().map(|p| p.to_string()),
            [
                "H#2026-12-31T23".to_string(),
                "D#2026-12-31".into(),
                "M#2026-12".into()
            ]
        );
        assert_eq!(
            h.archive_key("cus_x", 3),
            "usage/customer=cus_x/day=2026-12-31/hour=23/part-00003.jsonl.gz"
        );
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            "\"2026-12-31T23\"",
            "an hour serialises as its label"
        );
        assert_eq!(
            serde_json::from_str::<HourKey>("\"2026-12-31T23\"").unwrap(),
            h
        );
        assert!(serde_json::from_str::<HourKey>("\"2026-12-31\"").is_err());
        for bad in [
            "2026-12-31",
            "2026-12-31T24",
            "2026-12-31T1",
            "2026-13-01T00",
            "x",
        ] {
            assert!(HourKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sums_per_customer() {
        let t = datetime!(2026-11-25 10:00 UTC);
        let rs = vec![
            record("cus_a", t, Outcome::Done, 1),
            record("cus_a", t, Outcome::Failed, 2),
            record("cus_b", t, Outcome::Done, 5),
        ];
        let sums = sum_by_customer(&rs);
        assert_eq!(
            sums["cus_a"],
            Totals {
                jobs: 2,
                done: 1,
                failed: 1,
                bytes_in: 3000,
                bytes_out: 300,
                pixels_in: 30_000,
                pixels_out: 3_000,
                cpu_ms: 3
            }
        );
        assert_eq!(sums["cus_b"].jobs, 1);
        let mut m = sums["cus_a"];
        m.merge(&sums["cus_b"]);
        assert_eq!(m.bytes_in, 8000);
        assert_eq!(Totals::from_values(m.values()), m);
    }

    fn bounds(r: &UsageRange) -> (String, String) {
        let (lo, hi) = r.sort_key_bounds();
        (lo.to_string(), hi.to_string())
    }

    #[test]
    fn periods_parse_nest_and_label() {
        for key in ["H#2026-12-31T23", "D#2026-12-31", "M#2026-12"] {
            let p = Period::parse(key).unwrap();
            assert_eq!(p.to_string(), key);
            assert_eq!(p.label(), &key[2..]);
        }
        let h = Period::parse("H#2026-12-31T23").unwrap();
        assert_eq!(h.granularity(), Granularity::Hour);
        assert_eq!(h.parent().unwrap().to_string(), "D#2026-12-31");
        assert_eq!(
            h.parent().unwrap().parent().unwrap().to_string(),
            "M#2026-12"
        );
        assert_eq!(h.parent().unwrap().parent().unwrap().parent(), None);
        let d = Period::parse("D#2026-12-31").unwrap();
        assert_eq!(d.children_prefix().as_deref(), Some("H#2026-12-31"));
        assert_eq!(
            Period::parse("M#2026-12")
                .unwrap()
                .children_prefix()
                .as_deref(),
            Some("D#2026-12")
        );
        assert_eq!(h.children_prefix(), None);
        for bad in [
            "",
            "X#2026-12",
            "H#2026-12-31",
            "D#2026-12-32",
            "M#2026-1",
            "M#2026-12-01",
            "D#2026-12-31T00",
        ] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Period::hour(HourKey::parse("2026-01-02T03").unwrap()).to_string(),
            "H#2026-01-02T03"
        );
    }

    #[test]
    fn ranges() {
        let now = datetime!(2026-11-25 13:20 UTC);
        let r = UsageRange::parse(None, None, None, now).unwrap();
        assert_eq!(r.granularity, Granularity::Day);
        assert_eq!(r.from, datetime!(2026-11-01 0:00 UTC));
        assert_eq!(r.to, datetime!(2026-11-26 0:00 UTC));
        assert_eq!(
            bounds(&r),
            ("D#2026-11-01".to_string(), "D#2026-11-25".to_string())
        );

        let r = UsageRange::parse(
            Some("2026-11-25T10:30:00Z"),
            Some("2026-11-25T12:00:00Z"),
            Some("hour"),
            now,
        )
        .unwrap();
        assert_eq!(
            bounds(&r),
            ("H#2026-11-25T10".to_string(), "H#2026-11-25T11".to_string())
        );

        let r =
            UsageRange::parse(Some("2025-12-15"), Some("2026-02-01"), Some("month"), now).unwrap();
        assert_eq!(
            bounds(&r),
            ("M#2025-12".to_string(), "M#2026-01".to_string())
        );

        let err = |f: Option<&str>, t: Option<&str>, g: Option<&str>| {
            UsageRange::parse(f, t, g, now).unwrap_err()
        };
        assert_eq!(err(None, None, Some("week")).param, "granularity");
        assert_eq!(err(Some("yesterday"), None, None).param, "from");
        assert_eq!(
            err(Some("2026-11-20"), Some("2026-11-10"), None).param,
            "to"
        );
        let e = err(Some("2026-10-01"), Some("2026-11-01"), Some("hour"));
        assert!(e.message.contains("168 hours (7 days)"), "{}", e.message);
        assert!(
            UsageRange::parse(Some("2026-11-01"), Some("2026-11-08"), Some("hour"), now).is_ok()
        );
        assert!(
            UsageRange::parse(Some("2020-01-01"), Some("2026-11-08"), Some("month"), now).is_err()
        );
    }

    #[test]
    fn archive_lines_round_trip_and_totals_saturate() {
        let t = datetime!(2026-11-25 10:00 UTC);
        let a = record("cus_a", t, Outcome::Failed, 2);
        let mut out = Vec::new();
        archive_line(&a, &mut out);
        archive_line(&a, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        let first: UsageRecord = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first, a);

        let mut big = a.clone();
        big.bytes_in = u64::MAX;
        let mut sum = Totals::default();
        sum.add_record(&big);
        sum.add_record(&big);
        assert_eq!((sum.jobs, sum.bytes_in), (2, u64::MAX));
    }
}
