//! In-memory adapters of every port, for unit tests of the use cases: the same contracts as the
//! AWS adapters (conditional writes, atomic finish, overwrite-by-key), with scripted faults.
//!
//! ```
//! # use resizer_app::{memory::Memory, Settings};
//! let mem = Memory::new();
//! let app = mem.app(Settings::default());
//! mem.faults.fail_next("queue.send", resizer_app::StoreError::unavailable("sqs:SendMessage", "down"));
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use resizer_core::job::{Job, JobError, JobId, JobMessage, JobStatus};
use resizer_core::key::{ApiKey, Customer, CustomerStatus, KeyRecord, KeyStatus};
use resizer_core::preset::{Preset, PresetName};
use resizer_core::usage::{HourKey, Period, SkRange, Totals, UsageRecord, shard_for};
use time::OffsetDateTime;

use crate::aggregate::{LocalSlices, SliceDeps};
use crate::ports::{
    Accounts, Claim, ClosedHour, Finish, JobQueue, JobStore, ObjectHead, ObjectStore, Presigned,
    PresignedPost, RateCounters, RawUsage, Rollups, SliceReport, SliceRunner, SliceTask, UsageLog,
    UsagePage,
};
use crate::{App, Settings, StoreError, Stores};

/// A 1×1 RGBA PNG, for tests that need a real image and nothing more.
pub const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Scripted failures: the next calls of an operation (named `"<port>.<method>"`, e.g.
/// `"jobs.finish"`, `"staging.put"`, `"queue.send"`) fail with the given errors, in order.
///
/// It also keeps a journal of every port call ([`Faults::take_journal`]), by its exact name.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<HashMap<&'static str, VecDeque<StoreError>>>,
    calls: Mutex<HashMap<&'static str, u64>>,
    journal: Mutex<Vec<Call>>,
}

/// One port call, as the in-memory adapters saw it (failed calls included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `"<port>.<method>"`, exactly: `"jobs.finish"`, `"staging.get_prefix"`,
    /// `"results.presign_get"`, `"archive.put"`. (Fault names are coarser for object stores:
    /// `get_prefix` is `"staging.get"` there, presigning is `"objects.presign"`.)
    pub op: String,
    /// The object key, for a call on an object store.
    pub key: Option<String>,
}

impl Faults {
    pub fn fail_next(&self, op: &'static str, e: StoreError) {
        lock(&self.plan).entry(op).or_default().push_back(e);
    }

    /// How many times `op` was called (failed calls included).
    pub fn calls(&self, op: &'static str) -> u64 {
        lock(&self.calls).get(op).copied().unwrap_or(0)
    }

    /// Every port call since the last take, in order; the journal is emptied (so that a test
    /// can drop the calls of its own setup).
    pub fn take_journal(&self) -> Vec<Call> {
        std::mem::take(&mut *lock(&self.journal))
    }

    fn check(&self, op: &'static str) -> Result<(), StoreError> {
        self.check_as(op, op.to_owned(), None)
    }

    /// Counts and scripts failures under `op`, journals the call as `call` (on `key`).
    fn check_as(
        &self,
        op: &'static str,
        call: String,
        key: Option<&str>,
    ) -> Result<(), StoreError> {
        lock(&self.journal).push(Call {
            op: call,
            key: key.map(str::to_owned),
        });
        *lock(&self.calls).entry(op).or_default() += 1;
        match lock(&self.plan).get_mut(op).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Every port in memory, sharing one [`Faults`].
#[derive(Clone)]
pub struct Memory {
    pub faults: Arc<Faults>,
    pub jobs: Arc<MemoryJobs>,
    pub staging: Arc<MemoryObjects>,
    pub results: Arc<MemoryObjects>,
    pub archive: Arc<MemoryObjects>,
    pub queue: Arc<MemoryQueue>,
    pub dead_letters: Arc<MemoryQueue>,
    pub accounts: Arc<MemoryAccounts>,
    pub usage_log: Arc<MemoryUsageLog>,
    pub rollups: Arc<MemoryRollups>,
    pub slices: Arc<MemorySlices>,
    pub rate_counters: Arc<MemoryRateCounters>,
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl Memory {
    pub fn new() -> Self {
        let faults = Arc::new(Faults::default());
        let usage_log = Arc::new(MemoryUsageLog {
            faults: faults.clone(),
            records: Mutex::default(),
            shards: AtomicU32::new(resizer_core::usage::DEFAULT_SHARDS),
            page_limit: AtomicUsize::new(1000),
        });
        let objects = |name: &'static str| {
            Arc::new(MemoryObjects {
                name,
                faults: faults.clone(),
                objects: Mutex::default(),
            })
        };
        let archive = objects("archive");
        let rollups = Arc::new(MemoryRollups {
            faults: faults.clone(),
            rollups: Mutex::default(),
            counters: Mutex::default(),
            watermark: Mutex::default(),
            closed: Mutex::default(),
        });
        let slices = Arc::new(MemorySlices {
            faults: faults.clone(),
            inline: AtomicBool::new(true),
            tasks: Mutex::default(),
            local: LocalSlices::new(SliceDeps {
                usage_log: usage_log.clone(),
                rollups: rollups.clone(),
                archive: archive.clone(),
            }),
        });
        Self {
            jobs: Arc::new(MemoryJobs {
                faults: faults.clone(),
                jobs: Mutex::default(),
                usage: usage_log.clone(),
            }),
            staging: objects("staging"),
            results: objects("results"),
            archive,
            queue: Arc::new(MemoryQueue {
                ops: ("queue.send", "queue.defer"),
                faults: faults.clone(),
                sent: Mutex::default(),
                deferred: Mutex::default(),
            }),
            dead_letters: Arc::new(MemoryQueue {
                ops: ("dead_letters.send", "dead_letters.defer"),
                faults: faults.clone(),
                sent: Mutex::default(),
                deferred: Mutex::default(),
            }),
            accounts: Arc::new(MemoryAccounts {
                faults: faults.clone(),
                keys: Mutex::default(),
                customers: Mutex::default(),
                presets: Mutex::default(),
            }),
            rate_counters: Arc::new(MemoryRateCounters {
                faults: faults.clone(),
                counts: Mutex::default(),
            }),
            usage_log,
            rollups,
            slices,
            faults,
        }
    }

    pub fn stores(&self) -> Stores {
        Stores {
            jobs: self.jobs.clone(),
            staging: self.staging.clone(),
            results: self.results.clone(),
            archive: self.archive.clone(),
            queue: self.queue.clone(),
            dead_letters: self.dead_letters.clone(),
            accounts: self.accounts.clone(),
            usage_log: self.usage_log.clone(),
            rollups: self.rollups.clone(),
            slices: self.slices.clone(),
            rate_counters: self.rate_counters.clone(),
        }
    }

    pub fn app(&self, settings: Settings) -> App {
        App::new(settings, self.stores())
    }

    /// A new active customer (with a monthly job quota, if given) and a key of theirs.
    pub async fn customer(&self, app: &App, quota: Option<u64>) -> (Customer, ApiKey) {
        let mut c = Customer::new("memory", app.now());
        c.monthly_job_quota = quota;
        self.accounts
            .put_new_customer(&c)
            .await
            .expect("a fresh customer id");
        let key = ApiKey::generate();
        self.accounts
            .put_new_key(&KeyRecord::new(&key, &c.customer_id, app.now()))
            .await
            .expect("a fresh key id");
        (c, key)
    }

    /// A customer's hour rollup, if written.
    pub async fn rollups_get(&self, customer_id: &str, hour: HourKey) -> Option<Totals> {
        self.rollups
            .get(customer_id, Period::hour(hour))
            .await
            .ok()
            .flatten()
    }
}

// ---- jobs ----------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct MemoryJobs {
    faults: Arc<Faults>,
    jobs: Mutex<BTreeMap<JobId, Job>>,
    usage: Arc<MemoryUsageLog>,
}

impl MemoryJobs {
    pub fn all(&self) -> Vec<Job> {
        lock(&self.jobs).values().cloned().collect()
    }

    /// Writes a job as it is (tests set up states with it).
    pub fn insert(&self, job: Job) {
        lock(&self.jobs).insert(job.job_id.clone(), job);
    }
}

#[async_trait]
impl JobStore for MemoryJobs {
    async fn put_new(&self, job: &Job) -> Result<(), StoreError> {
        self.faults.check("jobs.put_new")?;
        let mut jobs = lock(&self.jobs);
        if jobs.contains_key(&job.job_id) {
            return Err(StoreError::Conflict { op: "jobs.put_new" });
        }
        jobs.insert(job.job_id.clone(), job.clone());
        Ok(())
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        self.faults.check("jobs.get")?;
        Ok(lock(&self.jobs).get(id).cloned())
    }

    async fn delete_queued(&self, id: &JobId) -> Result<(), StoreError> {
        self.faults.check("jobs.delete_queued")?;
        let mut jobs = lock(&self.jobs);
        match jobs.get(id) {
            Some(j) if j.status == JobStatus::Queued => {
                jobs.remove(id);
                Ok(())
            }
            _ => Err(StoreError::Conflict {
                op: "jobs.delete_queued",
            }),
        }
    }

    async fn claim(&self, id: &JobId, now: OffsetDateTime) -> Result<Claim, StoreError> {
        self.faults.check("jobs.claim")?;
        let mut jobs = lock(&self.jobs);
        let Some(job) = jobs.get_mut(id) else {
            return Ok(Claim::Missing);
        };
        if job.status.is_terminal() {
            return Ok(Claim::Finished(job.clone()));
        }
        if job.status == JobStatus::Processing && !job.released {
            job.crashes += 1;
        }
        job.status = JobStatus::Processing;
        job.released = false;
        job.updated_at = now;
        job.attempts += 1;
        Ok(Claim::Claimed(job.clone()))
    }

    async fn fail_unreadable(
        &self,
        id: &JobId,
        error: &JobError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.faults.check("jobs.fail_unreadable")?;
        let mut jobs = lock(&self.jobs);
        match jobs.get_mut(id) {
            Some(j) if !j.status.is_terminal() => {
                j.status = JobStatus::Failed;
                j.error = Some(error.clone());
                j.updated_at = now;
                Ok(())
            }
            _ => Err(StoreError::Conflict {
                op: "jobs.fail_unreadable",
            }),
        }
    }

    async fn release(&self, id: &JobId, attempt: u32) -> Result<(), StoreError> {
        self.faults.check("jobs.release")?;
        let mut jobs = lock(&self.jobs);
        match jobs.get_mut(id) {
            Some(j) if j.status == JobStatus::Processing && j.attempts == attempt => {
                j.released = true;
                Ok(())
            }
            _ => Err(StoreError::Conflict { op: "jobs.release" }),
        }
    }

    async fn finish(&self, job: &Job, usage: &UsageRecord) -> Result<Finish, StoreError> {
        self.faults.check("jobs.finish")?;
        let mut jobs = lock(&self.jobs);
        let Some(stored) = jobs.get_mut(&job.job_id) else {
            return Ok(Finish::AlreadyFinished);
        };
        if !stored.status.can_move_to(job.status) {
            return Ok(Finish::AlreadyFinished);
        }
        stored.status = job.status;
        stored.updated_at = job.updated_at;
        stored.result = job.result.clone();
        stored.error = job.error.clone();
        self.usage.insert(usage);
        Ok(Finish::Recorded)
    }

    async fn open_before(
        &self,
        shard: u32,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        self.faults.check("jobs.open_before")?;
        // The index's sort key is the creation or last sweep; `updated_at` is at least that.
        Ok(lock(&self.jobs)
            .values()
            .filter(|j| !j.status.is_terminal())
            .filter(|j| j.job_id.open_shard() == shard && j.updated_at < before)
            .map(|j| j.job_id.clone())
            .take(limit)
            .collect())
    }

    async fn open_count(&self, customer_id: &str, limit: u64) -> Result<u64, StoreError> {
        self.faults.check("jobs.open_count")?;
        let open = lock(&self.jobs)
            .values()
            .filter(|j| !j.status.is_terminal() && j.customer_id == customer_id)
            .count() as u64;
        Ok(open.min(limit))
    }

    async fn mark_swept(
        &self,
        id: &JobId,
        seen: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.faults.check("jobs.mark_swept")?;
        let mut jobs = lock(&self.jobs);
        match jobs.get_mut(id) {
            Some(j) if !j.status.is_terminal() && j.updated_at == seen => {
                j.updated_at = now;
                Ok(())
            }
            _ => Err(StoreError::Conflict {
                op: "jobs.mark_swept",
            }),
        }
    }
}

// ---- rate counters -------------------------------------------------------------------------------

#[derive(Debug)]
pub struct MemoryRateCounters {
    faults: Arc<Faults>,
    counts: Mutex<HashMap<(String, i64), u64>>,
}

impl MemoryRateCounters {
    /// What a customer's window has counted.
    pub fn count(&self, customer_id: &str, window_start: i64) -> u64 {
        lock(&self.counts)
            .get(&(customer_id.to_owned(), window_start))
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl RateCounters for MemoryRateCounters {
    async fn admit(
        &self,
        customer_id: &str,
        window_start: i64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        self.faults.check("rate_counters.admit")?;
        let mut counts = lock(&self.counts);
        let n = counts
            .entry((customer_id.to_owned(), window_start))
            .or_default();
        if *n >= limit {
            return Ok(false);
        }
        *n += 1;
        Ok(true)
    }
}

// ---- objects -------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct MemoryObjects {
    name: &'static str,
    faults: Arc<Faults>,
    objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
}

impl MemoryObjects {
    pub fn keys(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects).get(key).map(|(b, _)| b.clone())
    }

    fn op(&self, method: &'static str) -> &'static str {
        // One static name per bucket and method, for Faults.
        match (self.name, method) {
            ("staging", "put") => "staging.put",
            ("staging", "head") => "staging.head",
            ("staging", "get") => "staging.get",
            ("staging", "delete") => "staging.delete",
            ("results", "put") => "results.put",
            ("archive", "put") => "archive.put",
            (_, "presign") => "objects.presign",
            _ => "objects.other",
        }
    }

    /// Faults under the coarse name of `fault`, journalled as `<bucket>.<method>` on `key`.
    fn check(&self, fault: &'static str, method: &str, key: &str) -> Result<(), StoreError> {
        self.faults
            .check_as(self.op(fault), format!("{}.{method}", self.name), Some(key))
    }

    fn not_found(&self) -> StoreError {
        StoreError::NotFound {
            op: self.op("head"),
        }
    }

    fn sign(&self, key: &str, ttl: Duration, method: &str) -> Presigned {
        let expires_at = OffsetDateTime::now_utc() + ttl;
        Presigned {
            url: format!(
                "memory://{}/{key}?method={method}&expires={}",
                self.name,
                expires_at.unix_timestamp()
            ),
            expires_at,
        }
    }
}

#[async_trait]
impl ObjectStore for MemoryObjects {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.check("put", "put", key)?;
        lock(&self.objects).insert(key.to_owned(), (body, content_type.to_owned()));
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<ObjectHead, StoreError> {
        self.check("head", "head", key)?;
        let objects = lock(&self.objects);
        let (body, ct) = objects.get(key).ok_or_else(|| self.not_found())?;
        Ok(ObjectHead {
            size: body.len() as u64,
            content_type: Some(ct.clone()),
        })
    }

    async fn get(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        self.check("get", "get", key)?;
        let objects = lock(&self.objects);
        let (body, _) = objects.get(key).ok_or_else(|| self.not_found())?;
        if body.len() as u64 > max_bytes {
            return Err(StoreError::other(
                "objects.get",
                format!("object is {} bytes, over the {max_bytes} limit", body.len()),
            ));
        }
        Ok(body.clone())
    }

    async fn get_prefix(&self, key: &str, n: u64) -> Result<Vec<u8>, StoreError> {
        self.check("get", "get_prefix", key)?;
        let objects = lock(&self.objects);
        let (body, _) = objects.get(key).ok_or_else(|| self.not_found())?;
        Ok(body[..body.len().min(n as usize)].to_vec())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check("delete", "delete", key)?;
        lock(&self.objects).remove(key);
        Ok(())
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<Presigned, StoreError> {
        self.check("presign", "presign_get", key)?;
        Ok(self.sign(key, ttl, "GET"))
    }

    async fn presign_post(
        &self,
        key: &str,
        ttl: Duration,
        max_bytes: u64,
    ) -> Result<PresignedPost, StoreError> {
        self.check("presign", "presign_post", key)?;
        let expires_at = OffsetDateTime::now_utc() + ttl;
        Ok(PresignedPost {
            url: format!("memory://{}/", self.name),
            fields: vec![
                ("key".into(), key.to_owned()),
                ("policy".into(), format!("max_bytes={max_bytes}")),
            ],
            expires_at,
        })
    }
}

// ---- queue ---------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct MemoryQueue {
    /// The operation names of `send` and `defer`, for Faults.
    ops: (&'static str, &'static str),
    faults: Arc<Faults>,
    sent: Mutex<Vec<JobMessage>>,
    deferred: Mutex<Vec<(String, Duration)>>,
}

impl MemoryQueue {
    /// Every message sent, in order.
    pub fn sent(&self) -> Vec<JobMessage> {
        lock(&self.sent).clone()
    }

    /// Every redelivery pushed back: (receipt, delay), in order.
    pub fn deferred(&self) -> Vec<(String, Duration)> {
        lock(&self.deferred).clone()
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send(&self, msg: &JobMessage) -> Result<(), StoreError> {
        self.faults.check(self.ops.0)?;
        lock(&self.sent).push(msg.clone());
        Ok(())
    }

    async fn defer(&self, receipt_handle: &str, delay: Duration) -> Result<(), StoreError> {
        self.faults.check(self.ops.1)?;
        lock(&self.deferred).push((receipt_handle.to_owned(), delay));
        Ok(())
    }
}

// ---- accounts ------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct MemoryAccounts {
    faults: Arc<Faults>,
    keys: Mutex<BTreeMap<String, KeyRecord>>,
    customers: Mutex<BTreeMap<String, Customer>>,
    /// (customer, name) → preset.
    presets: Mutex<BTreeMap<(String, PresetName), Preset>>,
}

#[async_trait]
impl Accounts for MemoryAccounts {
    async fn put_new_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.faults.check("accounts.put_new_key")?;
        let mut keys = lock(&self.keys);
        if keys.contains_key(&key.key_id) {
            return Err(StoreError::Conflict {
                op: "accounts.put_new_key",
            });
        }
        keys.insert(key.key_id.clone(), key.clone());
        Ok(())
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.faults.check("accounts.get_key")?;
        Ok(lock(&self.keys).get(key_id).cloned())
    }

    async fn revoke_key(&self, key_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.faults.check("accounts.revoke_key")?;
        let mut keys = lock(&self.keys);
        let k = keys.get_mut(key_id).ok_or(StoreError::NotFound {
            op: "accounts.revoke_key",
        })?;
        k.status = KeyStatus::Revoked;
        k.revoked_at.get_or_insert(now);
        Ok(())
    }

    async fn list_keys(&self, customer_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.faults.check("accounts.list_keys")?;
        let mut keys: Vec<KeyRecord> = lock(&self.keys)
            .values()
            .filter(|k| k.customer_id == customer_id)
            .cloned()
            .collect();
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn put_new_customer(&self, c: &Customer) -> Result<(), StoreError> {
        self.faults.check("accounts.put_new_customer")?;
        let mut cs = lock(&self.customers);
        if cs.contains_key(&c.customer_id) {
            return Err(StoreError::Conflict {
                op: "accounts.put_new_customer",
            });
        }
        cs.insert(c.customer_id.clone(), c.clone());
        Ok(())
    }

    async fn get_customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.faults.check("accounts.get_customer")?;
        Ok(lock(&self.customers).get(id).cloned())
    }

    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        self.faults.check("accounts.list_customers")?;
        let mut cs: Vec<Customer> = lock(&self.customers).values().cloned().collect();
        cs.sort_by_key(|c| c.created_at);
        Ok(cs)
    }

    async fn set_customer_status(
        &self,
        id: &str,
        status: CustomerStatus,
    ) -> Result<(), StoreError> {
        self.faults.check("accounts.set_customer_status")?;
        let mut cs = lock(&self.customers);
        let c = cs.get_mut(id).ok_or(StoreError::NotFound {
            op: "accounts.set_customer_status",
        })?;
        c.status = status;
        Ok(())
    }

    async fn set_customer_quota(&self, id: &str, quota: Option<u64>) -> Result<(), StoreError> {
        self.faults.check("accounts.set_customer_quota")?;
        let mut cs = lock(&self.customers);
        let c = cs.get_mut(id).ok_or(StoreError::NotFound {
            op: "accounts.set_customer_quota",
        })?;
        c.monthly_job_quota = quota;
        Ok(())
    }

    async fn set_customer_max_open_jobs(
        &self,
        id: &str,
        limit: Option<u64>,
    ) -> Result<(), StoreError> {
        self.faults.check("accounts.set_customer_max_open_jobs")?;
        let mut cs = lock(&self.customers);
        let c = cs.get_mut(id).ok_or(StoreError::NotFound {
            op: "accounts.set_customer_max_open_jobs",
        })?;
        c.max_open_jobs = limit;
        Ok(())
    }

    async fn put_preset(&self, preset: &Preset) -> Result<Preset, StoreError> {
        self.faults.check("accounts.put_preset")?;
        let mut presets = lock(&self.presets);
        let key = (preset.customer_id.clone(), preset.name.clone());
        let mut stored = preset.clone();
        if let Some(old) = presets.get(&key) {
            stored.created_at = old.created_at;
        }
        presets.insert(key, stored.clone());
        Ok(stored)
    }

    async fn get_preset(
        &self,
        customer_id: &str,
        name: &PresetName,
    ) -> Result<Option<Preset>, StoreError> {
        self.faults.check("accounts.get_preset")?;
        Ok(lock(&self.presets)
            .get(&(customer_id.to_owned(), name.clone()))
            .cloned())
    }

    async fn delete_preset(&self, customer_id: &str, name: &PresetName) -> Result<(), StoreError> {
        self.faults.check("accounts.delete_preset")?;
        lock(&self.presets)
            .remove(&(customer_id.to_owned(), name.clone()))
            .map(drop)
            .ok_or(StoreError::NotFound {
                op: "accounts.delete_preset",
            })
    }

    async fn list_presets(&self, customer_id: &str) -> Result<Vec<Preset>, StoreError> {
        self.faults.check("accounts.list_presets")?;
        Ok(lock(&self.presets)
            .iter()
            .filter(|((c, _), _)| c == customer_id)
            .map(|(_, p)| p.clone())
            .collect())
    }
}

// ---- usage ---------------------------------------------------------------------------------------

/// A raw item as the memory table holds it: a record, or something that does not read as one.
#[derive(Debug, Clone)]
enum Stored {
    Record(UsageRecord),
    Unreadable(String),
}

#[derive(Debug)]
pub struct MemoryUsageLog {
    faults: Arc<Faults>,
    /// (hour, shard, sort key) → item: a repeat overwrites its own item, as in the table.
    records: Mutex<BTreeMap<(HourKey, u32, String), Stored>>,
    /// Shards a write spreads over (the writers' `USAGE_SHARDS`).
    shards: AtomicU32,
    /// Items per page.
    page_limit: AtomicUsize,
}

impl MemoryUsageLog {
    /// Every readable record.
    pub fn all(&self) -> Vec<UsageRecord> {
        lock(&self.records)
            .values()
            .filter_map(|s| match s {
                Stored::Record(r) => Some(r.clone()),
                Stored::Unreadable(_) => None,
            })
            .collect()
    }

    /// The number of shards later writes spread over.
    pub fn set_shards(&self, n: u32) {
        self.shards.store(n.max(1), Ordering::SeqCst);
    }

    /// Items per page, so that tests can prove every page is followed.
    pub fn set_page_limit(&self, n: usize) {
        self.page_limit.store(n.max(1), Ordering::SeqCst);
    }

    /// An item that does not read as a usage record (as a corrupt or foreign item in the table).
    pub fn insert_unreadable(&self, hour: HourKey, shard: u32, sk: &str, why: &str) {
        lock(&self.records).insert((hour, shard, sk.to_owned()), Stored::Unreadable(why.into()));
    }

    fn insert(&self, r: &UsageRecord) {
        let shard = shard_for(&r.job_id, self.shards.load(Ordering::SeqCst));
        lock(&self.records).insert((r.hour(), shard, r.sk()), Stored::Record(r.clone()));
    }
}

#[async_trait]
impl UsageLog for MemoryUsageLog {
    async fn put(&self, record: &UsageRecord) -> Result<(), StoreError> {
        self.faults.check("usage.put")?;
        self.insert(record);
        Ok(())
    }

    async fn page(
        &self,
        hour: HourKey,
        shard: u32,
        range: &SkRange,
        after: Option<&str>,
    ) -> Result<UsagePage, StoreError> {
        self.faults.check("usage.page")?;
        let limit = self.page_limit.load(Ordering::SeqCst);
        let records = lock(&self.records);
        let mut items: Vec<RawUsage> = records
            .range((hour, shard, String::new())..)
            .take_while(|((h, s, _), _)| *h == hour && *s == shard)
            .filter(|((_, _, sk), _)| range.contains(sk) && after.is_none_or(|a| sk.as_str() > a))
            .take(limit + 1)
            .map(|((_, _, sk), item)| RawUsage {
                sk: sk.clone(),
                record: match item {
                    Stored::Record(r) => Ok(r.clone()),
                    Stored::Unreadable(why) => Err(why.clone()),
                },
            })
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| i.sk.clone())
        } else {
            None
        };
        Ok(UsagePage {
            items,
            next,
            read_units: 0.0,
        })
    }
}

/// Runs slices in this process, journalled as `slices.run`; or only records them
/// ([`MemorySlices::record_only`]), so that a test of the scheduled run sees its own calls alone.
pub struct MemorySlices {
    faults: Arc<Faults>,
    inline: AtomicBool,
    tasks: Mutex<Vec<SliceTask>>,
    local: LocalSlices,
}

impl MemorySlices {
    /// From now on, record the tasks and answer an empty report without running them.
    pub fn record_only(&self) {
        self.inline.store(false, Ordering::SeqCst);
    }

    /// Every task run or recorded, in order.
    pub fn tasks(&self) -> Vec<SliceTask> {
        lock(&self.tasks).clone()
    }
}

impl std::fmt::Debug for MemorySlices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySlices").finish_non_exhaustive()
    }
}

#[async_trait]
impl SliceRunner for MemorySlices {
    async fn run(&self, task: &SliceTask) -> Result<SliceReport, StoreError> {
        self.faults.check("slices.run")?;
        lock(&self.tasks).push(*task);
        if self.inline.load(Ordering::SeqCst) {
            self.local.run(task).await
        } else {
            Ok(SliceReport {
                hour: task.hour.to_string(),
                slice: task.slice,
                ..SliceReport::default()
            })
        }
    }
}

#[derive(Debug)]
pub struct MemoryRollups {
    faults: Arc<Faults>,
    /// (customer, sort key) → totals; sort keys order like the table's.
    rollups: Mutex<BTreeMap<(String, String), Totals>>,
    /// (customer, month) → jobs accepted.
    counters: Mutex<BTreeMap<(String, Period), u64>>,
    watermark: Mutex<Option<HourKey>>,
    closed: Mutex<BTreeMap<HourKey, ClosedHour>>,
}

impl MemoryRollups {
    fn children(&self, customer_id: &str, parent: Period) -> Vec<(Period, Totals)> {
        let Some(prefix) = parent.children_prefix() else {
            return Vec::new();
        };
        lock(&self.rollups)
            .iter()
            .filter(|((c, k), _)| c == customer_id && k.starts_with(&prefix))
            .filter_map(|((_, k), t)| Some((Period::parse(k)?, *t)))
            .collect()
    }

    /// Sets the watermark as it is (tests set up states with it).
    pub fn set_watermark(&self, hour: Option<HourKey>) {
        *lock(&self.watermark) = hour;
    }
}

#[async_trait]
impl Rollups for MemoryRollups {
    async fn put(
        &self,
        customer_id: &str,
        period: Period,
        totals: &Totals,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.faults.check("rollups.put")?;
        lock(&self.rollups).insert((customer_id.to_owned(), period.to_string()), *totals);
        Ok(())
    }

    async fn get(&self, customer_id: &str, period: Period) -> Result<Option<Totals>, StoreError> {
        self.faults.check("rollups.get")?;
        Ok(lock(&self.rollups)
            .get(&(customer_id.to_owned(), period.to_string()))
            .copied())
    }

    async fn between(
        &self,
        customer_id: &str,
        from: Period,
        to: Period,
    ) -> Result<Vec<(Period, Totals)>, StoreError> {
        self.faults.check("rollups.between")?;
        let c = customer_id.to_owned();
        Ok(lock(&self.rollups)
            .range((c.clone(), from.to_string())..=(c, to.to_string()))
            .filter_map(|((_, k), t)| Some((Period::parse(k)?, *t)))
            .collect())
    }

    async fn within(
        &self,
        customer_id: &str,
        parent: Period,
    ) -> Result<Vec<(Period, Totals)>, StoreError> {
        self.faults.check("rollups.within")?;
        Ok(self.children(customer_id, parent))
    }

    async fn sum_children(
        &self,
        customer_id: &str,
        parent: Period,
        _now: OffsetDateTime,
    ) -> Result<Totals, StoreError> {
        self.faults.check("rollups.sum_children")?;
        // One lock over the read and the write: atomic, as the adapter's conditional write is.
        let mut rollups = lock(&self.rollups);
        let prefix = parent.children_prefix().unwrap_or_default();
        let mut sum = Totals::default();
        for ((c, k), t) in rollups.iter() {
            if c == customer_id && !prefix.is_empty() && k.starts_with(&prefix) {
                sum.merge(t);
            }
        }
        rollups.insert((customer_id.to_owned(), parent.to_string()), sum);
        Ok(sum)
    }

    async fn quota_count(
        &self,
        customer_id: &str,
        month: Period,
    ) -> Result<Option<u64>, StoreError> {
        self.faults.check("rollups.quota_count")?;
        Ok(lock(&self.counters)
            .get(&(customer_id.to_owned(), month))
            .copied())
    }

    async fn reserve_job(
        &self,
        customer_id: &str,
        month: Period,
        quota: u64,
        _now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        self.faults.check("rollups.reserve_job")?;
        let mut counters = lock(&self.counters);
        let n = counters.entry((customer_id.to_owned(), month)).or_default();
        if *n >= quota {
            return Ok(None);
        }
        *n += 1;
        Ok(Some(*n))
    }

    async fn release_job(
        &self,
        customer_id: &str,
        month: Period,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.faults.check("rollups.release_job")?;
        if let Some(n) = lock(&self.counters).get_mut(&(customer_id.to_owned(), month)) {
            *n = n.saturating_sub(1);
        }
        Ok(())
    }

    async fn watermark(&self) -> Result<Option<HourKey>, StoreError> {
        self.faults.check("rollups.watermark")?;
        Ok(*lock(&self.watermark))
    }

    async fn move_watermark(
        &self,
        from: Option<HourKey>,
        to: HourKey,
        _now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.faults.check("rollups.move_watermark")?;
        let mut w = lock(&self.watermark);
        if *w != from {
            return Ok(false);
        }
        *w = Some(to);
        Ok(true)
    }

    async fn closed_hour(&self, hour: HourKey) -> Result<Option<ClosedHour>, StoreError> {
        self.faults.check("rollups.closed_hour")?;
        Ok(lock(&self.closed).get(&hour).cloned())
    }

    async fn put_closed_hour(&self, closed: &ClosedHour) -> Result<(), StoreError> {
        self.faults.check("rollups.put_closed_hour")?;
        let hour = HourKey::parse(&closed.hour)
            .ok_or_else(|| StoreError::other("rollups.put_closed_hour", "bad hour"))?;
        lock(&self.closed).insert(hour, closed.clone());
        Ok(())
    }
}
