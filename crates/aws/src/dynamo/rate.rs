//! The rate-limit counters: `pk` `<customer_id>#<window start>`, a count `n`, and an
//! `expires_at` TTL an hour after the window (the table holds only recent windows).

use async_trait::async_trait;
use resizer_app::ports::RateCounters;

use super::{Table, num, s};
use crate::error::{StoreError, classify};

#[derive(Debug, Clone)]
pub struct RateCountersTable {
    table: Table,
}

impl RateCountersTable {
    pub fn new(client: aws_sdk_dynamodb::Client, name: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, name),
        }
    }
}

#[async_trait]
impl RateCounters for RateCountersTable {
    async fn admit(
        &self,
        customer_id: &str,
        window_start: i64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        const OP: &str = "dynamodb:UpdateItem rate-limits";
        let res = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("pk", s(&format!("{customer_id}#{window_start}")))
            .update_expression("ADD n :one SET expires_at = if_not_exists(expires_at, :ttl)")
            .condition_expression("attribute_not_exists(n) OR n < :limit")
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":limit", num(limit))
            .expression_attribute_values(":ttl", num(window_start + 3600))
            .send()
            .await;
        match res.map_err(|e| classify(OP, e)) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
