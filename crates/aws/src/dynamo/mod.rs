//! The DynamoDB adapters, one per table: [`JobsTable`], [`AccountsTables`] (api-keys and
//! customers), [`UsageTable`] (raw usage) and [`RollupsTable`]. Each is bound to its table; the
//! get, put, query and scan loops they share are written once, in [`Table`].

mod accounts;
mod jobs;
mod rate;
mod rollups;
mod usage;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use accounts::AccountsTables;
pub use jobs::{JobsTable, OPEN_BY_CUSTOMER_INDEX};
pub use rate::RateCountersTable;
pub use rollups::{AGGREGATOR_PK, RollupsTable, WATERMARK_SK, closed_sk, quota_sk};
pub use usage::UsageTable;

use crate::error::{StoreError, classify};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// A client bound to one table, with the operations every adapter needs. `op` names the call in
/// errors and logs (`"dynamodb:GetItem jobs"`).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub client: aws_sdk_dynamodb::Client,
    pub name: String,
    /// Caps the items per page (DynamoDB's own cap is 1 MB); tests use it to prove that every
    /// page is followed.
    pub page_limit: Option<i32>,
}

impl Table {
    pub fn new(client: aws_sdk_dynamodb::Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            page_limit: None,
        }
    }

    /// One item by its key; strongly consistent when `consistent`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: Item,
        consistent: bool,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| classify(op, e))?;
        out.item.map(from_item).transpose()
    }

    /// Writes an item; with `new_key`, only if no item with that key attribute exists.
    pub async fn put(
        &self,
        op: &'static str,
        item: Item,
        new_key: Option<&str>,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .set_condition_expression(new_key.map(|k| format!("attribute_not_exists({k})")))
            .send()
            .await
            .map_err(|e| classify(op, e))?;
        Ok(())
    }

    /// Every item a query matches, every page followed.
    pub async fn query_all(
        &self,
        op: &'static str,
        key_condition: &str,
        values: Item,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression(key_condition)
                .set_expression_attribute_values(Some(values.clone()))
                .consistent_read(consistent)
                .set_limit(self.page_limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(op, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Every item of the table (matching `filter`), every page followed. For operators' queries.
    pub async fn scan_all(
        &self,
        op: &'static str,
        filter: Option<(&str, Item)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .scan()
                .table_name(&self.name)
                .set_limit(self.page_limit)
                .set_exclusive_start_key(start.take());
            if let Some((expr, vals)) = &filter {
                req = req
                    .filter_expression(*expr)
                    .set_expression_attribute_values(Some(vals.clone()));
            }
            let page = req.send().await.map_err(|e| classify(op, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

/// A conditional update's "condition failed" means "no such item" where the condition is
/// `attribute_exists(<key>)`.
pub(crate) fn not_found_on_conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { op } => StoreError::NotFound { op },
        other => other,
    }
}

pub(crate) fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

pub(crate) fn num(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn key(name: &str, value: &str) -> Item {
    Item::from([(name.to_owned(), s(value))])
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("a UTC timestamp always formats")
}

pub(crate) fn to_item<T: Serialize>(v: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::other("serialise item", e.to_string()))
}

pub(crate) fn to_value<T: Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v)
        .map_err(|e| StoreError::other("serialise attribute", e.to_string()))
}

/// An item as `T`. One that does not parse is `Rejected`: reading it again will not help.
pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::rejected("deserialise item", e.to_string()))
}
