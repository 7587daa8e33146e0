//! The raw usage table: `pk` `H#<hour>#<shard>`, `sk` `<customer_id>#<job_id>`, one item per job
//! outcome, expiring by TTL.

use async_trait::async_trait;
use resizer_app::ports::UsageLog;
use resizer_core::usage::{HourKey, UsageRecord, raw_pk};

use super::{Item, Table, from_item, num, s, to_item};
use crate::error::StoreError;

#[derive(Debug, Clone)]
pub struct UsageTable {
    table: Table,
    /// Partitions one hour is spread over.
    shards: u32,
}

impl UsageTable {
    pub fn new(client: aws_sdk_dynamodb::Client, name: impl Into<String>, shards: u32) -> Self {
        Self {
            table: Table::new(client, name),
            shards,
        }
    }

    /// Caps the items per query page; tests use it to prove that every page is followed.
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.table.page_limit = Some(limit);
        self
    }

    pub fn name(&self) -> &str {
        &self.table.name
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The raw usage item of a record: its fields plus `pk`, `sk` and the `expires_at` TTL.
    pub fn item(&self, r: &UsageRecord) -> Result<Item, StoreError> {
        let mut item = to_item(r)?;
        item.insert("pk".into(), s(&r.pk(self.shards)));
        item.insert("sk".into(), s(&r.sk()));
        item.insert("expires_at".into(), num(r.expires_at()));
        Ok(item)
    }
}

#[async_trait]
impl UsageLog for UsageTable {
    async fn put(&self, record: &UsageRecord) -> Result<(), StoreError> {
        self.table
            .put("dynamodb:PutItem usage", self.item(record)?, None)
            .await
    }

    /// All shards queried concurrently, every page followed. Eventually consistent: half the
    /// read cost; the next run sees anything missed.
    async fn records_of_hour(&self, hour: HourKey) -> Result<Vec<UsageRecord>, StoreError> {
        let shards = (0..self.shards).map(|shard| {
            let values = Item::from([(":pk".to_owned(), s(&raw_pk(&hour, shard)))]);
            self.table
                .query_all("dynamodb:Query usage", "pk = :pk", values, false)
        });
        let pages = futures::future::try_join_all(shards).await?;
        pages.into_iter().flatten().map(from_item).collect()
    }
}
