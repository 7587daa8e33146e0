//! The jobs table. Every state change of a job is a conditional write built from
//! [`JobStatus::allowed_from`], so a redelivered message can never redo or undo a finished job. A
//! job's terminal state and its usage item are written in one transaction: both or neither.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem, Update};
use resizer_app::ports::{Claim, Finish, JobStore};
use resizer_core::job::{Job, JobId, JobStatus};
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
        let (cond, mut values) = status_condition(JobStatus::Processing.allowed_from());
        values.insert(":processing".into(), s(JobStatus::Processing.as_str()));
        values.insert(":now".into(), s(&rfc3339(now)));
        values.insert(":one".into(), num(1));
        values.insert(":zero".into(), num(0));
        let res = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::id(id)))
            .update_expression(
                "SET #status = :processing, updated_at = :now, \
                 attempts = if_not_exists(attempts, :zero) + :one",
            )
            .condition_expression(format!("attribute_exists(job_id) AND ({cond})"))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
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
                StoreError::Conflict { .. } => match self.get(id).await? {
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
            .update_expression(format!("SET {}", set.join(", ")))
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
