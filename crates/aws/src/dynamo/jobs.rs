//! The jobs table. Every state change of a job is a conditional write built from
//! [`JobStatus::allowed_from`], so a redelivered message can never redo or undo a finished job. A
//! job's terminal state and its usage item are written in one transaction: both or neither.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, Select, TransactWriteItem, Update,
};
use resizer_app::ports::{Claim, Finish, JobStore};
use resizer_core::job::{Job, JobError, JobId, JobStatus, OPEN_JOB_SHARDS};
use resizer_core::usage::UsageRecord;
use time::OffsetDateTime;

use super::{Item, Table, UsageTable, from_item, key, num, rfc3339, s, to_item, to_value};
use crate::error::{StoreError, classify};

#[derive(Debug, Clone)]
pub struct JobsTable {
    table: Table,
    /// Where a finished job's usage item goes, in the same transaction.
    usage: UsageTable,
}

impl JobsTable {
    /// One conditional claim update, returning the claimed job.
    async fn update_claim(
        &self,
        id: &JobId,
        condition: &str,
        update: &str,
        now: OffsetDateTime,
        seen_attempts: Option<u32>,
    ) -> Result<Job, StoreError> {
        const OP: &str = "dynamodb:UpdateItem jobs";
        let mut values = Item::from([
            (":processing".to_owned(), s(JobStatus::Processing.as_str())),
            (":now".to_owned(), s(&rfc3339(now))),
            (":one".to_owned(), num(1)),
            (":zero".to_owned(), num(0)),
        ]);
        if condition.contains(":queued") {
            values.insert(":queued".into(), s(JobStatus::Queued.as_str()));
        }
        if condition.contains(":yes") {
            values.insert(":yes".into(), AttributeValue::Bool(true));
        }
        if let Some(n) = seen_attempts {
            values.insert(":seen".into(), num(n));
        }
        let out = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::id(id)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let item = out
            .attributes
            .ok_or_else(|| StoreError::other(OP, "no attributes"))?;
        from_item(item)
    }

    pub fn new(
        client: aws_sdk_dynamodb::Client,
        name: impl Into<String>,
        usage: UsageTable,
    ) -> Self {
        Self {
            table: Table::new(client, name),
            usage,
        }
    }

    fn id(id: &JobId) -> Item {
        key("job_id", id.as_str())
    }
}

#[async_trait]
impl JobStore for JobsTable {
    async fn put_new(&self, job: &Job) -> Result<(), StoreError> {
        let mut item = to_item(job)?;
        item.insert("expires_at".into(), num(job.expires_at()));
        // In the open-by-customer index until finished (see `finish`).
        item.insert(OPEN_AT.into(), num(epoch_ms(job.created_at)));
        item.insert(OPEN_CUSTOMER.into(), s(&job.customer_id));
        self.table
            .put("dynamodb:PutItem jobs", item, Some("job_id"))
            .await
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        self.table
            .get("dynamodb:GetItem jobs", Self::id(id), true)
            .await
    }

    async fn delete_queued(&self, id: &JobId) -> Result<(), StoreError> {
        self.table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::id(id)))
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
            .send()
            .await
            .map_err(|e| classify("dynamodb:DeleteItem jobs", e))?;
        Ok(())
    }

    async fn claim(&self, id: &JobId, now: OffsetDateTime) -> Result<Claim, StoreError> {
        const OP: &str = "dynamodb:UpdateItem jobs";
        // A clean claim: a queued job, or one its previous attempt released.
        let clean = self
            .update_claim(
                id,
                "attribute_exists(job_id) AND (#status = :queued OR (#status = :processing AND released = :yes))",
                "SET #status = :processing, updated_at = :now, \
                 attempts = if_not_exists(attempts, :zero) + :one REMOVE released",
                now,
                None,
            )
            .await;
        match clean {
            Ok(job) => return Ok(Claim::Claimed(job)),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        let Some(job) = self.get(id).await? else {
            return Ok(Claim::Missing);
        };
        if job.status.is_terminal() {
            return Ok(Claim::Finished(job));
        }
        if job.status != JobStatus::Processing || job.released {
            // It changed under us (another delivery claimed or released it): try again later.
            return Err(StoreError::Conflict { op: OP });
        }
        // Held by an attempt that neither finished nor released it: that attempt died. Count a
        // crash, once: only if nobody has claimed it since we read it.
        let job = self
            .update_claim(
                id,
                "#status = :processing AND attempts = :seen",
                "SET updated_at = :now, attempts = attempts + :one, \
                 crashes = if_not_exists(crashes, :zero) + :one",
                now,
                Some(job.attempts),
            )
            .await?;
        Ok(Claim::Claimed(job))
    }

    async fn fail_unreadable(
        &self,
        id: &JobId,
        error: &JobError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (cond, mut values) = status_condition(JobStatus::Failed.allowed_from());
        values.insert(":failed".into(), s(JobStatus::Failed.as_str()));
        values.insert(":error".into(), to_value(error)?);
        values.insert(":now".into(), s(&rfc3339(now)));
        self.table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::id(id)))
            .update_expression(format!(
                "SET #status = :failed, #error = :error, updated_at = :now {LEAVE_OPEN_INDEX}"
            ))
            .condition_expression(format!("attribute_exists(job_id) AND ({cond})"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| classify("dynamodb:UpdateItem jobs", e))?;
        Ok(())
    }

    async fn release(&self, id: &JobId, attempt: u32) -> Result<(), StoreError> {
        self.table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::id(id)))
            .update_expression("SET released = :yes")
            .condition_expression("#status = :processing AND attempts = :attempt")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":processing", s(JobStatus::Processing.as_str()))
            .expression_attribute_values(":attempt", num(attempt))
            .send()
            .await
            .map_err(|e| classify("dynamodb:UpdateItem jobs", e))?;
        Ok(())
    }

    async fn finish(&self, job: &Job, usage: &UsageRecord) -> Result<Finish, StoreError> {
        debug_assert!(job.status.is_terminal());
        const OP: &str = "dynamodb:TransactWriteItems";
        let (cond, mut values) = status_condition(job.status.allowed_from());
        values.insert(":status".into(), s(job.status.as_str()));
        values.insert(":now".into(), s(&rfc3339(job.updated_at)));
        let mut names = HashMap::from([("#status".to_string(), "status".to_string())]);
        let mut set = vec!["#status = :status", "updated_at = :now"];
        if let Some(result) = &job.result {
            values.insert(":result".into(), to_value(result)?);
            names.insert("#result".into(), "result".into());
            set.push("#result = :result");
        }
        if let Some(error) = &job.error {
            values.insert(":error".into(), to_value(error)?);
            names.insert("#error".into(), "error".into());
            set.push("#error = :error");
        }
        let update = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(Self::id(&job.job_id)))
            .update_expression(format!("SET {} {LEAVE_OPEN_INDEX}", set.join(", ")))
            .condition_expression(format!("attribute_exists(job_id) AND ({cond})"))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::other(OP, e.to_string()))?;
        let put = Put::builder()
            .table_name(self.usage.name())
            .set_item(Some(self.usage.item(usage)?))
            .build()
            .map_err(|e| StoreError::other(OP, e.to_string()))?;
        let res = self
            .table
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match res {
            Ok(_) => Ok(Finish::Recorded),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let codes: Vec<&str> = c
                        .cancellation_reasons()
                        .iter()
                        .filter_map(|r| r.code())
                        .collect();
                    if codes.contains(&"ConditionalCheckFailed") {
                        return Ok(Finish::AlreadyFinished);
                    }
                    return Err(StoreError::unavailable(
                        OP,
                        format!("transaction cancelled: {codes:?}"),
                    ));
                }
                Err(classify(OP, e))
            }
        }
    }

    async fn open_before(
        &self,
        shard: u32,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        // Segment `shard` of a parallel Scan of the sparse open-by-customer index: it holds only
        // unfinished jobs, so a scan reads about 100 B per open job (10,000 open jobs: ~1 MB,
        // ~125 RRU a run), and the sweeper needs no index of its own (two index writes a job).
        const OP: &str = "dynamodb:Scan jobs open-by-customer";
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let page = self
                .table
                .client
                .scan()
                .table_name(&self.table.name)
                .index_name(OPEN_BY_CUSTOMER_INDEX)
                .segment(i32::try_from(shard).unwrap_or(0))
                .total_segments(i32::try_from(OPEN_JOB_SHARDS).unwrap_or(1))
                .filter_expression("open_at < :before")
                .expression_attribute_values(":before", num(epoch_ms(before)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(OP, e))?;
            for item in page.items.unwrap_or_default() {
                match item
                    .get("job_id")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|v| JobId::parse(v))
                {
                    Some(id) if out.len() < limit => out.push(id),
                    Some(_) => {}
                    None => {
                        tracing::warn!("an open-jobs index entry without a valid job id; skipped")
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn open_count(&self, customer_id: &str, limit: u64) -> Result<u64, StoreError> {
        const OP: &str = "dynamodb:Query jobs open-by-customer";
        let mut count = 0u64;
        let mut start: Option<Item> = None;
        while count < limit {
            let page = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .index_name(OPEN_BY_CUSTOMER_INDEX)
                .key_condition_expression("open_customer = :c")
                .expression_attribute_values(":c", s(customer_id))
                .select(Select::Count)
                .limit(i32::try_from(limit - count).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(OP, e))?;
            count += u64::try_from(page.count).unwrap_or(0);
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(count.min(limit))
    }

    async fn mark_swept(
        &self,
        id: &JobId,
        seen: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (cond, mut values) = status_condition(&[JobStatus::Queued, JobStatus::Processing]);
        values.insert(":seen".into(), s(&rfc3339(seen)));
        values.insert(":now".into(), s(&rfc3339(now)));
        values.insert(":now_ms".into(), num(epoch_ms(now)));
        self.table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::id(id)))
            .update_expression("SET updated_at = :now, open_at = :now_ms")
            .condition_expression(format!(
                "attribute_exists(open_customer) AND updated_at = :seen AND ({cond})"
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| classify("dynamodb:UpdateItem jobs", e))?;
        Ok(())
    }
}

/// Unfinished jobs by customer (KEYS_ONLY, sparse: a finished job's update removes its
/// `open_customer` and `open_at`, so the index holds only the jobs that are not finished): what
/// the api counts against a customer's limit of open jobs (a Query), and what the sweeper scans
/// for jobs neither created nor swept since its stale bound (`open_at`).
pub const OPEN_BY_CUSTOMER_INDEX: &str = "open-by-customer";
const OPEN_AT: &str = "open_at";
const OPEN_CUSTOMER: &str = "open_customer";
const LEAVE_OPEN_INDEX: &str = "REMOVE open_at, open_customer";

fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `#status IN (:s0, :s1, …)` and its values.
fn status_condition(allowed: &[JobStatus]) -> (String, Item) {
    let mut values = Item::new();
    let names: Vec<String> = allowed
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let n = format!(":s{i}");
            values.insert(n.clone(), s(st.as_str()));
            n
        })
        .collect();
    (format!("#status IN ({})", names.join(", ")), values)
}
