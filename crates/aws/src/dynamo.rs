//! The DynamoDB adapter: jobs, api-keys, customers, usage and usage-rollups.
//!
//! Every state change of a job is a conditional write built from
//! [`JobStatus::allowed_from`], so a redelivered message can never redo or undo a finished job.
//! A job's terminal state and its usage item are written in one transaction: both or neither.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use resizer_core::job::{Job, JobId, JobStatus};
use resizer_core::key::{Customer, CustomerStatus, KeyRecord, KeyStatus};
use resizer_core::usage::{HourKey, Totals, UsageRecord};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{StoreError, classify};

type Item = HashMap<String, AttributeValue>;

/// Table names, from [`crate::Config`].
#[derive(Debug, Clone)]
pub struct TableNames {
    pub jobs: String,
    pub api_keys: String,
    pub customers: String,
    pub usage: String,
    pub usage_rollups: String,
}

/// The outcome of trying to claim a job for processing.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Ours to process; `attempts` has been raised.
    Claimed(Job),
    /// Already `done` or `failed`: nothing to do.
    Finished(Job),
    /// No such job (expired, or never written).
    Missing,
}

/// The outcome of finishing a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The terminal state and the usage item were written together.
    Recorded,
    /// The job was already terminal; nothing was written.
    AlreadyFinished,
}

/// A customer's archive bookkeeping for one hour.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveMarker {
    pub hour: String,
    pub customers: u64,
    pub records: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub archived_at: OffsetDateTime,
}

/// The rollups table's partition that holds archive markers. Customer ids start with `cus_`,
/// so it cannot collide with one.
pub const ARCHIVE_MARKER_PK: &str = "__archive__";

#[derive(Debug, Clone)]
pub struct Tables {
    client: aws_sdk_dynamodb::Client,
    names: TableNames,
    usage_shards: u32,
    page_limit: Option<i32>,
}

impl Tables {
    pub fn new(client: aws_sdk_dynamodb::Client, names: TableNames, usage_shards: u32) -> Self {
        Self {
            client,
            names,
            usage_shards,
            page_limit: None,
        }
    }

    /// Caps the items per query page (DynamoDB's own cap is 1 MB). Tests use it to prove that
    /// every page is followed.
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = Some(limit);
        self
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn names(&self) -> &TableNames {
        &self.names
    }

    pub fn usage_shards(&self) -> u32 {
        self.usage_shards
    }

    // ---- jobs -------------------------------------------------------------------------------

    /// Writes a new `queued` job. Refuses to overwrite an existing id.
    pub async fn put_new_job(&self, job: &Job) -> Result<(), StoreError> {
        let mut item = to_item(job)?;
        item.insert("expires_at".into(), num(job.expires_at()));
        self.client
            .put_item()
            .table_name(&self.names.jobs)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(job_id)")
            .send()
            .await
            .map_err(|e| classify("dynamodb:PutItem jobs", e))?;
        Ok(())
    }

    /// Reads a job, strongly consistent (a poller must see its own writes).
    pub async fn get_job(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.names.jobs)
            .key("job_id", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem jobs", e))?;
        out.item.map(from_item).transpose()
    }

    /// Removes a job that never made it onto the queue. Only a `queued` job can be removed.
    pub async fn delete_queued_job(&self, id: &JobId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.names.jobs)
            .key("job_id", s(id.as_str()))
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
            .send()
            .await
            .map_err(|e| classify("dynamodb:DeleteItem jobs", e))?;
        Ok(())
    }

    /// Claims a job: `queued`→`processing`, or a redelivered `processing` with its attempt count
    /// raised.
    pub async fn claim_job(&self, id: &JobId, now: OffsetDateTime) -> Result<Claim, StoreError> {
        let (cond, mut values) = status_condition(JobStatus::Processing.allowed_from());
        values.insert(":processing".into(), s(JobStatus::Processing.as_str()));
        values.insert(":now".into(), s(&rfc3339(now)));
        values.insert(":one".into(), num(1));
        values.insert(":zero".into(), num(0));
        let res = self
            .client
            .update_item()
            .table_name(&self.names.jobs)
            .key("job_id", s(id.as_str()))
            .update_expression(
                "SET #status = :processing, updated_at = :now, \
                 attempts = if_not_exists(attempts, :zero) + :one",
            )
            .condition_expression(format!("attribute_exists(job_id) AND ({cond})"))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes.ok_or_else(|| {
                    StoreError::other("dynamodb:UpdateItem jobs", "no attributes")
                })?;
                Ok(Claim::Claimed(from_item(item)?))
            }
            Err(e) => match classify("dynamodb:UpdateItem jobs", e) {
                StoreError::Conflict { .. } => match self.get_job(id).await? {
                    Some(job) if job.status.is_terminal() => Ok(Claim::Finished(job)),
                    Some(job) => Err(StoreError::other(
                        "dynamodb:UpdateItem jobs",
                        format!("claim refused in state {}", job.status),
                    )),
                    None => Ok(Claim::Missing),
                },
                other => Err(other),
            },
        }
    }

    /// Moves `job` to its terminal status (`job.status`, with `result` or `error` set) and writes
    /// its usage item, in one transaction. The move is allowed only from
    /// [`JobStatus::allowed_from`] of the terminal status.
    pub async fn finish_job(&self, job: &Job, usage: &UsageRecord) -> Result<Finish, StoreError> {
        debug_assert!(job.status.is_terminal());
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
            .table_name(&self.names.jobs)
            .key("job_id", s(job.job_id.as_str()))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(format!("attribute_exists(job_id) AND ({cond})"))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::other("dynamodb:TransactWriteItems", e.to_string()))?;
        let put = Put::builder()
            .table_name(&self.names.usage)
            .set_item(Some(self.usage_item(usage)?))
            .build()
            .map_err(|e| StoreError::other("dynamodb:TransactWriteItems", e.to_string()))?;
        let res = self
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
                    return Err(StoreError::Unavailable {
                        op: "dynamodb:TransactWriteItems",
                        detail: format!("transaction cancelled: {codes:?}"),
                    });
                }
                Err(classify("dynamodb:TransactWriteItems", e))
            }
        }
    }

    // ---- keys and customers -----------------------------------------------------------------

    pub async fn put_new_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.names.api_keys)
            .set_item(Some(to_item(key)?))
            .condition_expression("attribute_not_exists(key_id)")
            .send()
            .await
            .map_err(|e| classify("dynamodb:PutItem api-keys", e))?;
        Ok(())
    }

    pub async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.names.api_keys)
            .key("key_id", s(key_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem api-keys", e))?;
        out.item.map(from_item).transpose()
    }

    /// Revokes a key. `NotFound` if there is no such key.
    pub async fn revoke_key(&self, key_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.names.api_keys)
            .key("key_id", s(key_id))
            .update_expression(
                "SET #status = :revoked, revoked_at = if_not_exists(revoked_at, :now)",
            )
            .condition_expression("attribute_exists(key_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":revoked", s(KeyStatus::Revoked.as_str()))
            .expression_attribute_values(":now", s(&rfc3339(now)))
            .send()
            .await
            .map_err(|e| not_found_on_conflict(classify("dynamodb:UpdateItem api-keys", e)))?;
        Ok(())
    }

    /// A customer's keys (an operator's query: a filtered scan).
    pub async fn list_keys(&self, customer_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let items = self
            .scan_all(
                &self.names.api_keys,
                Some((
                    "customer_id = :c",
                    HashMap::from([(":c".into(), s(customer_id))]),
                )),
            )
            .await?;
        let mut keys: Vec<KeyRecord> =
            items.into_iter().map(from_item).collect::<Result<_, _>>()?;
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    pub async fn put_new_customer(&self, c: &Customer) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.names.customers)
            .set_item(Some(to_item(c)?))
            .condition_expression("attribute_not_exists(customer_id)")
            .send()
            .await
            .map_err(|e| classify("dynamodb:PutItem customers", e))?;
        Ok(())
    }

    pub async fn get_customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.names.customers)
            .key("customer_id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem customers", e))?;
        out.item.map(from_item).transpose()
    }

    pub async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        let items = self.scan_all(&self.names.customers, None).await?;
        let mut cs: Vec<Customer> = items.into_iter().map(from_item).collect::<Result<_, _>>()?;
        cs.sort_by_key(|c| c.created_at);
        Ok(cs)
    }

    pub async fn set_customer_status(
        &self,
        id: &str,
        status: CustomerStatus,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.names.customers)
            .key("customer_id", s(id))
            .update_expression("SET #status = :s")
            .condition_expression("attribute_exists(customer_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .send()
            .await
            .map_err(|e| not_found_on_conflict(classify("dynamodb:UpdateItem customers", e)))?;
        Ok(())
    }

    /// Sets (or with `None`, removes) a customer's monthly job quota.
    pub async fn set_customer_quota(&self, id: &str, quota: Option<u64>) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.names.customers)
            .key("customer_id", s(id))
            .condition_expression("attribute_exists(customer_id)");
        let req = match quota {
            Some(q) => req
                .update_expression("SET monthly_job_quota = :q")
                .expression_attribute_values(":q", num(q)),
            None => req.update_expression("REMOVE monthly_job_quota"),
        };
        req.send()
            .await
            .map_err(|e| not_found_on_conflict(classify("dynamodb:UpdateItem customers", e)))?;
        Ok(())
    }

    // ---- usage ------------------------------------------------------------------------------

    /// The raw usage item of a record: its fields plus `pk`, `sk` and the `expires_at` TTL.
    pub fn usage_item(&self, r: &UsageRecord) -> Result<Item, StoreError> {
        let mut item = to_item(r)?;
        item.insert("pk".into(), s(&r.pk(self.usage_shards)));
        item.insert("sk".into(), s(&r.sk()));
        item.insert("expires_at".into(), num(r.expires_at()));
        Ok(item)
    }

    /// Writes a raw usage item on its own (the normal path writes it with the job's outcome).
    pub async fn put_usage(&self, r: &UsageRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.names.usage)
            .set_item(Some(self.usage_item(r)?))
            .send()
            .await
            .map_err(|e| classify("dynamodb:PutItem usage", e))?;
        Ok(())
    }

    /// Every raw record of one hour: all shards queried concurrently, every page followed.
    pub async fn usage_of_hour(&self, hour: HourKey) -> Result<Vec<UsageRecord>, StoreError> {
        let shards = (0..self.usage_shards)
            .map(|shard| self.usage_of_partition(resizer_core::usage::raw_pk(&hour, shard)));
        let pages = futures::future::try_join_all(shards).await?;
        Ok(pages.into_iter().flatten().collect())
    }

    async fn usage_of_partition(&self, pk: String) -> Result<Vec<UsageRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.names.usage)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&pk))
                // Eventually consistent: half the read cost; the next run sees anything missed.
                .consistent_read(false)
                .set_limit(self.page_limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("dynamodb:Query usage", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(from_item(item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    // ---- rollups ----------------------------------------------------------------------------

    pub async fn put_rollup(
        &self,
        customer_id: &str,
        period: &str,
        totals: &Totals,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut item = to_item(totals)?;
        item.insert("customer_id".into(), s(customer_id));
        item.insert("period".into(), s(period));
        item.insert("updated_at".into(), s(&rfc3339(now)));
        self.client
            .put_item()
            .table_name(&self.names.usage_rollups)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify("dynamodb:PutItem usage-rollups", e))?;
        Ok(())
    }

    /// A customer's rollups with sort keys in `from..=to`, in order.
    pub async fn rollups_between(
        &self,
        customer_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, Totals)>, StoreError> {
        self.query_rollups(
            customer_id,
            "customer_id = :c AND period BETWEEN :a AND :b",
            [(":a", from), (":b", to)],
        )
        .await
    }

    /// A customer's rollups whose sort key starts with `prefix` (e.g. the hours of one day).
    pub async fn rollups_with_prefix(
        &self,
        customer_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Totals)>, StoreError> {
        self.query_rollups(
            customer_id,
            "customer_id = :c AND begins_with(period, :a)",
            [(":a", prefix)],
        )
        .await
    }

    /// One rollup, if present.
    pub async fn get_rollup(
        &self,
        customer_id: &str,
        period: &str,
    ) -> Result<Option<Totals>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.names.usage_rollups)
            .key("customer_id", s(customer_id))
            .key("period", s(period))
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem usage-rollups", e))?;
        out.item.map(from_item).transpose()
    }

    async fn query_rollups<const N: usize>(
        &self,
        customer_id: &str,
        key_condition: &str,
        values: [(&str, &str); N],
    ) -> Result<Vec<(String, Totals)>, StoreError> {
        let mut vals: Item = values.iter().map(|(k, v)| (k.to_string(), s(v))).collect();
        vals.insert(":c".into(), s(customer_id));
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.names.usage_rollups)
                .key_condition_expression(key_condition)
                .set_expression_attribute_values(Some(vals.clone()))
                .set_limit(self.page_limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("dynamodb:Query usage-rollups", e))?;
            for item in page.items.unwrap_or_default() {
                let period = match item.get("period") {
                    Some(AttributeValue::S(p)) => p.clone(),
                    _ => {
                        return Err(StoreError::other(
                            "dynamodb:Query usage-rollups",
                            "no period",
                        ));
                    }
                };
                out.push((period, from_item(item)?));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    pub async fn get_archive_marker(
        &self,
        hour: HourKey,
    ) -> Result<Option<ArchiveMarker>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.names.usage_rollups)
            .key("customer_id", s(ARCHIVE_MARKER_PK))
            .key("period", s(&format!("H#{hour}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem usage-rollups", e))?;
        out.item.map(from_item).transpose()
    }

    pub async fn put_archive_marker(&self, m: &ArchiveMarker) -> Result<(), StoreError> {
        let mut item = to_item(m)?;
        item.insert("customer_id".into(), s(ARCHIVE_MARKER_PK));
        item.insert("period".into(), s(&format!("H#{}", m.hour)));
        self.client
            .put_item()
            .table_name(&self.names.usage_rollups)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify("dynamodb:PutItem usage-rollups", e))?;
        Ok(())
    }

    // ---- helpers ----------------------------------------------------------------------------

    async fn scan_all(
        &self,
        table: &str,
        filter: Option<(&str, Item)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .scan()
                .table_name(table)
                .set_limit(self.page_limit)
                .set_exclusive_start_key(start.take());
            if let Some((expr, vals)) = &filter {
                req = req
                    .filter_expression(*expr)
                    .set_expression_attribute_values(Some(vals.clone()));
            }
            let page = req.send().await.map_err(|e| classify("dynamodb:Scan", e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }
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

fn not_found_on_conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { op } => StoreError::NotFound { op },
        other => other,
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn num(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("a UTC timestamp always formats")
}

fn to_item<T: Serialize>(v: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::other("serialise item", e.to_string()))
}

fn to_value<T: Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v)
        .map_err(|e| StoreError::other("serialise attribute", e.to_string()))
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::other("deserialise item", e.to_string()))
}
