//! The raw usage table: `pk` `H#<hour>#<shard>` (the hour the outcome was recorded in), `sk`
//! `<customer_id>#<job_id>`, one item per job outcome, expiring by TTL.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use resizer_app::ports::{RawUsage, UsageLog, UsagePage};
use resizer_core::usage::{HourKey, SkRange, UsageRecord, raw_pk};

use super::{Item, Table, from_item, num, s, to_item};
use crate::error::{StoreError, classify};

/// Items per page of a raw read: bounds what a slice worker holds per shard (two pages: the one
/// it reads and the next, already requested), at about 350 KB a page.
pub const PAGE_ITEMS: i32 = 1000;

const QUERY: &str = "dynamodb:Query usage";

#[derive(Debug, Clone)]
pub struct UsageTable {
    table: Table,
    /// Partitions one hour is spread over.
    shards: u32,
}

impl UsageTable {
    pub fn new(client: aws_sdk_dynamodb::Client, name: impl Into<String>, shards: u32) -> Self {
        let mut table = Table::new(client, name);
        table.page_limit = Some(PAGE_ITEMS);
        Self { table, shards }
    }

    /// Caps the items per query page; tests use it to prove that every page is followed.
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.table.page_limit = Some(limit);
        self
    }

    pub fn name(&self) -> &str {
        &self.table.name
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.table.client
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

/// A raw item as the aggregator reads it: its sort key and its record, or why it is not one.
fn raw(item: Item) -> RawUsage {
    let sk = match item.get("sk") {
        Some(AttributeValue::S(sk)) => sk.clone(),
        _ => String::new(),
    };
    RawUsage {
        sk,
        record: from_item::<UsageRecord>(item).map_err(|e| e.to_string()),
    }
}

#[async_trait]
impl UsageLog for UsageTable {
    async fn put(&self, record: &UsageRecord) -> Result<(), StoreError> {
        self.table
            .put("dynamodb:PutItem usage", self.item(record)?, None)
            .await
    }

    /// One Query page, eventually consistent (half the read cost), with the capacity it
    /// consumed.
    async fn page(
        &self,
        hour: HourKey,
        shard: u32,
        range: &SkRange,
        after: Option<&str>,
    ) -> Result<UsagePage, StoreError> {
        let pk = raw_pk(&hour, shard);
        let mut values = Item::from([(":pk".to_owned(), s(&pk))]);
        let condition = match (&range.from, &range.to) {
            (None, None) => "pk = :pk",
            (Some(from), None) => {
                values.insert(":from".into(), s(from));
                "pk = :pk AND sk >= :from"
            }
            (None, Some(to)) => {
                values.insert(":to".into(), s(to));
                "pk = :pk AND sk < :to"
            }
            // BETWEEN is inclusive; `to` is a customer-id prefix, never a whole sort key (those
            // hold a `#`), so no item equals it.
            (Some(from), Some(to)) => {
                values.insert(":from".into(), s(from));
                values.insert(":to".into(), s(to));
                "pk = :pk AND sk BETWEEN :from AND :to"
            }
        };
        let start =
            after.map(|sk| Item::from([("pk".to_owned(), s(&pk)), ("sk".to_owned(), s(sk))]));
        let out = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .key_condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .consistent_read(false)
            .set_limit(self.table.page_limit)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify(QUERY, e))?;
        let read_units = out
            .consumed_capacity()
            .and_then(|c| c.capacity_units())
            .unwrap_or(0.0);
        let next = match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => match k.get("sk") {
                Some(AttributeValue::S(sk)) => Some(sk.clone()),
                _ => return Err(StoreError::other(QUERY, "a page ended without a sort key")),
            },
            _ => None,
        };
        let items = out.items.unwrap_or_default().into_iter().map(raw).collect();
        Ok(UsagePage {
            items,
            next,
            read_units,
        })
    }
}
