//! The usage-rollups table: `customer_id`, `period` ([`Period`]'s sort key), the summed totals;
//! the monthly quota counters (`Q#<yyyy-mm>`, one per customer with a quota and month); and the
//! aggregator's bookkeeping (its watermark and the hours it closed) under a partition no customer
//! can have.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use resizer_app::ports::{ClosedHour, Rollups};
use resizer_core::usage::{HourKey, Period, Totals};
use time::OffsetDateTime;

use super::{Item, Table, from_item, num, rfc3339, s, to_item};
use crate::error::{StoreError, classify};

/// The partition of the aggregator's own items. Customer ids start with `cus_`, so it cannot
/// collide with one.
pub const AGGREGATOR_PK: &str = "__aggregator__";
/// The watermark's sort key: the oldest hour not yet closed.
pub const WATERMARK_SK: &str = "watermark";

const PUT: &str = "dynamodb:PutItem usage-rollups";
const GET: &str = "dynamodb:GetItem usage-rollups";
const QUERY: &str = "dynamodb:Query usage-rollups";
const UPDATE: &str = "dynamodb:UpdateItem usage-rollups";
/// How often a recomputation retries when another one wrote the same rollup in between.
const SUM_ATTEMPTS: u32 = 20;

#[derive(Debug, Clone)]
pub struct RollupsTable {
    table: Table,
}

/// The sort key of a closed hour's record.
pub fn closed_sk(hour: HourKey) -> String {
    format!("closed#{hour}")
}

/// The sort key of a customer's quota counter for `month`.
pub fn quota_sk(month: Period) -> String {
    format!("Q#{}", month.label())
}

impl RollupsTable {
    pub fn new(client: aws_sdk_dynamodb::Client, name: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, name),
        }
    }

    fn key(customer_id: &str, period: &str) -> Item {
        Item::from([
            ("customer_id".to_owned(), s(customer_id)),
            ("period".to_owned(), s(period)),
        ])
    }

    async fn query(
        &self,
        customer_id: &str,
        key_condition: &str,
        values: &[(&str, String)],
        consistent: bool,
    ) -> Result<Vec<(Period, Totals)>, StoreError> {
        let mut vals: Item = values.iter().map(|(k, v)| (k.to_string(), s(v))).collect();
        vals.insert(":c".into(), s(customer_id));
        let items = self
            .table
            .query_all(QUERY, key_condition, vals, consistent)
            .await?;
        items
            .into_iter()
            .map(|item| {
                let period = match item.get("period") {
                    Some(AttributeValue::S(p)) => Period::parse(p),
                    _ => None,
                }
                .ok_or_else(|| StoreError::other(QUERY, "no period"))?;
                Ok((period, from_item(item)?))
            })
            .collect()
    }

    async fn children(
        &self,
        customer_id: &str,
        parent: Period,
    ) -> Result<Vec<(Period, Totals)>, StoreError> {
        let Some(prefix) = parent.children_prefix() else {
            return Ok(Vec::new());
        };
        self.query(
            customer_id,
            "customer_id = :c AND begins_with(period, :a)",
            &[(":a", prefix)],
            true,
        )
        .await
    }

    fn number(item: &Item, name: &str) -> Option<u64> {
        match item.get(name) {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        }
    }
}

#[async_trait]
impl Rollups for RollupsTable {
    async fn put(
        &self,
        customer_id: &str,
        period: Period,
        totals: &Totals,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut item = to_item(totals)?;
        item.extend(Self::key(customer_id, &period.to_string()));
        item.insert("updated_at".into(), s(&rfc3339(now)));
        self.table.put(PUT, item, None).await
    }

    async fn get(&self, customer_id: &str, period: Period) -> Result<Option<Totals>, StoreError> {
        self.table
            .get(GET, Self::key(customer_id, &period.to_string()), false)
            .await
    }

    async fn between(
        &self,
        customer_id: &str,
        from: Period,
        to: Period,
    ) -> Result<Vec<(Period, Totals)>, StoreError> {
        self.query(
            customer_id,
            "customer_id = :c AND period BETWEEN :a AND :b",
            &[(":a", from.to_string()), (":b", to.to_string())],
            false,
        )
        .await
    }

    async fn within(
        &self,
        customer_id: &str,
        parent: Period,
    ) -> Result<Vec<(Period, Totals)>, StoreError> {
        self.children(customer_id, parent).await
    }

    /// Optimistic: read the rollup's `version`, sum its children (strongly consistent), and
    /// write the sum only if the version is still the one read; otherwise read again. The
    /// writer that wins last read every child written before it.
    async fn sum_children(
        &self,
        customer_id: &str,
        parent: Period,
        now: OffsetDateTime,
    ) -> Result<Totals, StoreError> {
        let key = Self::key(customer_id, &parent.to_string());
        for _ in 0..SUM_ATTEMPTS {
            let current = self
                .table
                .client
                .get_item()
                .table_name(&self.table.name)
                .set_key(Some(key.clone()))
                .consistent_read(true)
                .projection_expression("version, customer_id")
                .send()
                .await
                .map_err(|e| classify(GET, e))?
                .item;
            let mut sum = Totals::default();
            for (_, t) in self.children(customer_id, parent).await? {
                sum.merge(&t);
            }
            let (condition, version) = match &current {
                None => ("attribute_not_exists(customer_id)".to_owned(), 0),
                Some(item) => match Self::number(item, "version") {
                    Some(v) => ("version = :v".to_owned(), v),
                    // Written before rollups had versions.
                    None => ("attribute_not_exists(version)".to_owned(), 0),
                },
            };
            let mut item = to_item(&sum)?;
            item.extend(key.clone());
            item.insert("updated_at".into(), s(&rfc3339(now)));
            item.insert("version".into(), num(version + 1));
            let mut req = self
                .table
                .client
                .put_item()
                .table_name(&self.table.name)
                .set_item(Some(item))
                .condition_expression(&condition);
            if condition.contains(":v") {
                req = req.expression_attribute_values(":v", num(version));
            }
            match req.send().await.map_err(|e| classify(PUT, e)) {
                Ok(_) => return Ok(sum),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::unavailable(
            PUT,
            format!("{customer_id} {parent}: still contended after {SUM_ATTEMPTS} attempts"),
        ))
    }

    async fn quota_count(
        &self,
        customer_id: &str,
        month: Period,
    ) -> Result<Option<u64>, StoreError> {
        let item = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::key(customer_id, &quota_sk(month))))
            .consistent_read(false)
            .send()
            .await
            .map_err(|e| classify(GET, e))?
            .item;
        Ok(item.as_ref().and_then(|i| Self::number(i, "accepted")))
    }

    async fn reserve_job(
        &self,
        customer_id: &str,
        month: Period,
        quota: u64,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        let res = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::key(customer_id, &quota_sk(month))))
            .update_expression("SET updated_at = :now ADD accepted :one")
            .condition_expression("attribute_not_exists(accepted) OR accepted < :quota")
            .expression_attribute_values(":now", s(&rfc3339(now)))
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":quota", num(quota))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(Some(
                out.attributes
                    .as_ref()
                    .and_then(|a| Self::number(a, "accepted"))
                    .unwrap_or(1),
            )),
            Err(e) => match classify(UPDATE, e) {
                StoreError::Conflict { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn release_job(
        &self,
        customer_id: &str,
        month: Period,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let res = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::key(customer_id, &quota_sk(month))))
            .update_expression("SET updated_at = :now ADD accepted :minus")
            .condition_expression("accepted > :zero")
            .expression_attribute_values(":now", s(&rfc3339(now)))
            .expression_attribute_values(":minus", num(-1))
            .expression_attribute_values(":zero", num(0))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match classify(UPDATE, e) {
                // Nothing to give back.
                StoreError::Conflict { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn watermark(&self) -> Result<Option<HourKey>, StoreError> {
        let item = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(Self::key(AGGREGATOR_PK, WATERMARK_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(GET, e))?
            .item;
        match item.as_ref().and_then(|i| i.get("hour")) {
            None => Ok(None),
            Some(AttributeValue::S(h)) => HourKey::parse(h)
                .map(Some)
                .ok_or_else(|| StoreError::other(GET, format!("a watermark that is no hour: {h}"))),
            Some(other) => Err(StoreError::other(GET, format!("a watermark of {other:?}"))),
        }
    }

    async fn move_watermark(
        &self,
        from: Option<HourKey>,
        to: HourKey,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut item = Self::key(AGGREGATOR_PK, WATERMARK_SK);
        item.insert("hour".into(), s(&to.to_string()));
        item.insert("updated_at".into(), s(&rfc3339(now)));
        let mut req = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(item));
        req = match from {
            None => req.condition_expression("attribute_not_exists(customer_id)"),
            Some(h) => req
                .condition_expression("#hour = :from")
                .expression_attribute_names("#hour", "hour")
                .expression_attribute_values(":from", s(&h.to_string())),
        };
        match req.send().await.map_err(|e| classify(PUT, e)) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn closed_hour(&self, hour: HourKey) -> Result<Option<ClosedHour>, StoreError> {
        self.table
            .get(GET, Self::key(AGGREGATOR_PK, &closed_sk(hour)), true)
            .await
    }

    async fn put_closed_hour(&self, closed: &ClosedHour) -> Result<(), StoreError> {
        let hour = HourKey::parse(&closed.hour)
            .ok_or_else(|| StoreError::other(PUT, "a closed hour that is no hour"))?;
        let mut item = to_item(closed)?;
        item.extend(Self::key(AGGREGATOR_PK, &closed_sk(hour)));
        self.table.put(PUT, item, None).await
    }
}
