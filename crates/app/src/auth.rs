//! API-key authentication with a bounded warm-container cache.
//!
//! A verified key record (with its customer and, for customers with a quota, the month's count of
//! accepted jobs) is trusted for at most [`crate::Settings::auth_cache_ttl`]. So a revoked key or a
//! disabled customer stops working within that bound. The cached count only turns away a customer
//! already known to be over quota early: every accepted job is counted against the quota by a
//! conditional write when it is submitted (`App::submit`), which no cache can overrun. The secret
//! is checked on every request, in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use resizer_core::key::{ApiKey, Customer, CustomerStatus, KeyRecord, KeyStatus};
use resizer_core::usage::{Granularity, Period};
use time::OffsetDateTime;

use crate::error::AppError;
use crate::ports::{Accounts, Rollups};

/// Entries kept at most; past this, expired entries are dropped, then the oldest.
const MAX_ENTRIES: usize = 10_000;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub customer_id: String,
    pub key_id: String,
    pub monthly_job_quota: Option<u64>,
    /// Jobs accepted this month, by the quota counter when the key was read (0 when the customer
    /// has no quota).
    pub month_jobs: u64,
    /// The customer's own limit of unfinished jobs, if it has one (else the stack's).
    pub max_open_jobs: Option<u64>,
}

impl Principal {
    pub fn over_quota(&self) -> bool {
        self.monthly_job_quota.is_some_and(|q| self.month_jobs >= q)
    }

    /// The answer to a customer whose monthly quota is used up.
    pub fn quota_exceeded(&self) -> AppError {
        AppError::QuotaExceeded(format!(
            "the monthly job quota of {} is used up ({} jobs this month); it resets on the 1st (UTC)",
            self.monthly_job_quota.unwrap_or_default(),
            self.month_jobs
        ))
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: KeyRecord,
    customer: Option<Customer>,
    month: Period,
    month_jobs: u64,
    fetched: Instant,
}

#[derive(Debug)]
pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Forgets everything (tests, and operators' tools sharing a process).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Authenticates a presented key (`rsz_<key_id>_<secret>`).
    pub async fn authenticate(
        &self,
        accounts: &dyn Accounts,
        rollups: &dyn Rollups,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<Principal, AppError> {
        let key = ApiKey::parse(presented).ok_or(AppError::Unauthorized("malformed key"))?;
        let month = Granularity::Month.period_of(now);
        let cached = {
            let map = self.lock();
            map.get(key.key_id())
                .filter(|e| e.fetched.elapsed() < self.ttl && e.month == month)
                .cloned()
        };
        let entry = match cached {
            Some(e) => e,
            None => {
                let e = self.fetch(accounts, rollups, key.key_id(), month).await?;
                if !self.ttl.is_zero() {
                    self.insert(key.key_id().to_owned(), e.clone());
                }
                e
            }
        };
        if !key.verify(&entry.key.secret_hash) {
            return Err(AppError::Unauthorized("wrong secret"));
        }
        if entry.key.status != KeyStatus::Active {
            return Err(AppError::Unauthorized("revoked key"));
        }
        let customer = entry
            .customer
            .ok_or(AppError::Unauthorized("key of a missing customer"))?;
        if customer.status != CustomerStatus::Active {
            return Err(AppError::CustomerDisabled);
        }
        Ok(Principal {
            customer_id: customer.customer_id,
            key_id: entry.key.key_id,
            monthly_job_quota: customer.monthly_job_quota,
            month_jobs: entry.month_jobs,
            max_open_jobs: customer.max_open_jobs,
        })
    }

    async fn fetch(
        &self,
        accounts: &dyn Accounts,
        rollups: &dyn Rollups,
        key_id: &str,
        month: Period,
    ) -> Result<Entry, AppError> {
        let key = accounts
            .get_key(key_id)
            .await?
            .ok_or(AppError::Unauthorized("unknown key"))?;
        let customer = accounts.get_customer(&key.customer_id).await?;
        let month_jobs = match customer.as_ref().and_then(|c| c.monthly_job_quota) {
            Some(_) => rollups
                .quota_count(&key.customer_id, month)
                .await?
                .unwrap_or(0),
            None => 0,
        };
        Ok(Entry {
            key,
            customer,
            month,
            month_jobs,
            fetched: Instant::now(),
        })
    }

    fn insert(&self, key_id: String, e: Entry) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            map.retain(|_, v| v.fetched.elapsed() < ttl);
            if map.len() >= MAX_ENTRIES
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, v)| v.fetched)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(key_id, e);
    }
}
