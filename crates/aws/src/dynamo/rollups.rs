//! The usage-rollups table: `customer_id`, `period` ([`Period`]'s sort key), the summed totals;
//! and the archive markers, under a partition no customer can have.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use resizer_app::ports::{ArchiveMarker, Rollups};
use resizer_core::usage::{HourKey, Period, Totals};
use time::OffsetDateTime;

use super::{Item, Table, from_item, rfc3339, s, to_item};
use crate::error::StoreError;

/// The partition that holds archive markers. Customer ids start with `cus_`, so it cannot collide
/// with one.
pub const ARCHIVE_MARKER_PK: &str = "__archive__";

#[derive(Debug, Clone)]
pub struct RollupsTable {
    table: Table,
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
    ) -> Result<Vec<(Period, Totals)>, StoreError> {
        const OP: &str = "dynamodb:Query usage-rollups";
        let mut vals: Item = values.iter().map(|(k, v)| (k.to_string(), s(v))).collect();
        vals.insert(":c".into(), s(customer_id));
        let items = self.table.query_all(OP, key_condition, vals, false).await?;
        items
            .into_iter()
            .map(|item| {
                let period = match item.get("period") {
                    Some(AttributeValue::S(p)) => Period::parse(p),
                    _ => None,
                }
                .ok_or_else(|| StoreError::other(OP, "no period"))?;
                Ok((period, from_item(item)?))
            })
            .collect()
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
        self.table
            .put("dynamodb:PutItem usage-rollups", item, None)
            .await
    }

    async fn get(&self, customer_id: &str, period: Period) -> Result<Option<Totals>, StoreError> {
        self.table
            .get(
                "dynamodb:GetItem usage-rollups",
                Self::key(customer_id, &period.to_string()),
                false,
            )
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
        )
        .await
    }

    async fn within(
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
        )
        .await
    }

    async fn archive_marker(&self, hour: HourKey) -> Result<Option<ArchiveMarker>, StoreError> {
        self.table
            .get(
                "dynamodb:GetItem usage-rollups",
                Self::key(ARCHIVE_MARKER_PK, &Period::hour(hour).to_string()),
                true,
            )
            .await
    }

    async fn put_archive_marker(&self, m: &ArchiveMarker) -> Result<(), StoreError> {
        let hour = HourKey::parse(&m.hour)
            .ok_or_else(|| StoreError::other("dynamodb:PutItem usage-rollups", "bad hour"))?;
        let mut item = to_item(m)?;
        item.extend(Self::key(
            ARCHIVE_MARKER_PK,
            &Period::hour(hour).to_string(),
        ));
        self.table
            .put("dynamodb:PutItem usage-rollups", item, None)
            .await
    }
}
