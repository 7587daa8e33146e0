//! The api-keys, customers and presets tables: written by the management plane (`resizer admin`),
//! read by authentication; the presets also by their customers, through the API.

use async_trait::async_trait;
use resizer_app::ports::Accounts;
use resizer_core::key::{Customer, CustomerStatus, KeyRecord, KeyStatus};
use resizer_core::preset::{Preset, PresetName};
use time::OffsetDateTime;

use super::{
    Item, Table, from_item, key, not_found_on_conflict, num, rfc3339, s, to_item, to_value,
};
use crate::error::{StoreError, classify};

#[derive(Debug, Clone)]
pub struct AccountsTables {
    keys: Table,
    customers: Table,
    /// pk `customer_id`, sk `name`.
    presets: Table,
}

impl AccountsTables {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        api_keys_table: impl Into<String>,
        customers_table: impl Into<String>,
        presets_table: impl Into<String>,
    ) -> Self {
        Self {
            keys: Table::new(client.clone(), api_keys_table),
            customers: Table::new(client.clone(), customers_table),
            presets: Table::new(client, presets_table),
        }
    }
}

#[async_trait]
impl Accounts for AccountsTables {
    async fn put_new_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        self.keys
            .put("dynamodb:PutItem api-keys", to_item(k)?, Some("key_id"))
            .await
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.keys
            .get("dynamodb:GetItem api-keys", key("key_id", key_id), true)
            .await
    }

    async fn revoke_key(&self, key_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.keys
            .client
            .update_item()
            .table_name(&self.keys.name)
            .set_key(Some(key("key_id", key_id)))
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

    /// An operator's query: a filtered scan.
    async fn list_keys(&self, customer_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let filter = (
            "customer_id = :c",
            Item::from([(":c".into(), s(customer_id))]),
        );
        let items = self
            .keys
            .scan_all("dynamodb:Scan api-keys", Some(filter))
            .await?;
        let mut keys: Vec<KeyRecord> =
            items.into_iter().map(from_item).collect::<Result<_, _>>()?;
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn put_new_customer(&self, c: &Customer) -> Result<(), StoreError> {
        self.customers
            .put(
                "dynamodb:PutItem customers",
                to_item(c)?,
                Some("customer_id"),
            )
            .await
    }

    async fn get_customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.customers
            .get("dynamodb:GetItem customers", key("customer_id", id), true)
            .await
    }

    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        let items = self
            .customers
            .scan_all("dynamodb:Scan customers", None)
            .await?;
        let mut cs: Vec<Customer> = items.into_iter().map(from_item).collect::<Result<_, _>>()?;
        cs.sort_by_key(|c| c.created_at);
        Ok(cs)
    }

    async fn set_customer_status(
        &self,
        id: &str,
        status: CustomerStatus,
    ) -> Result<(), StoreError> {
        self.customers
            .client
            .update_item()
            .table_name(&self.customers.name)
            .set_key(Some(key("customer_id", id)))
            .update_expression("SET #status = :s")
            .condition_expression("attribute_exists(customer_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .send()
            .await
            .map_err(|e| not_found_on_conflict(classify("dynamodb:UpdateItem customers", e)))?;
        Ok(())
    }

    async fn set_customer_quota(&self, id: &str, quota: Option<u64>) -> Result<(), StoreError> {
        self.set_customer_number(id, "monthly_job_quota", quota)
            .await
    }

    async fn set_customer_max_open_jobs(
        &self,
        id: &str,
        limit: Option<u64>,
    ) -> Result<(), StoreError> {
        self.set_customer_number(id, "max_open_jobs", limit).await
    }

    async fn put_preset(&self, p: &Preset) -> Result<Preset, StoreError> {
        let now = s(&rfc3339(p.updated_at));
        let out = self
            .presets
            .client
            .update_item()
            .table_name(&self.presets.name)
            .set_key(Some(preset_key(&p.customer_id, &p.name)))
            .update_expression(
                "SET #params = :params, #updated = :now, #created = if_not_exists(#created, :now)",
            )
            .expression_attribute_names("#params", "params")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#created", "created_at")
            .expression_attribute_values(":params", to_value(&p.params)?)
            .expression_attribute_values(":now", now)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify("dynamodb:UpdateItem presets", e))?;
        from_item(out.attributes.unwrap_or_default())
    }

    async fn get_preset(
        &self,
        customer_id: &str,
        name: &PresetName,
    ) -> Result<Option<Preset>, StoreError> {
        self.presets
            .get(
                "dynamodb:GetItem presets",
                preset_key(customer_id, name),
                true,
            )
            .await
    }

    async fn delete_preset(&self, customer_id: &str, name: &PresetName) -> Result<(), StoreError> {
        self.presets
            .client
            .delete_item()
            .table_name(&self.presets.name)
            .set_key(Some(preset_key(customer_id, name)))
            .condition_expression("attribute_exists(customer_id)")
            .send()
            .await
            .map_err(|e| not_found_on_conflict(classify("dynamodb:DeleteItem presets", e)))?;
        Ok(())
    }

    async fn list_presets(&self, customer_id: &str) -> Result<Vec<Preset>, StoreError> {
        let items = self
            .presets
            .query_all(
                "dynamodb:Query presets",
                "customer_id = :c",
                Item::from([(":c".into(), s(customer_id))]),
                true,
            )
            .await?;
        items.into_iter().map(from_item).collect()
    }
}

fn preset_key(customer_id: &str, name: &PresetName) -> Item {
    Item::from([
        ("customer_id".to_owned(), s(customer_id)),
        ("name".to_owned(), s(name.as_str())),
    ])
}

impl AccountsTables {
    /// Sets a number attribute of an existing customer, or removes it with `None`. `NotFound`
    /// if there is no such customer.
    async fn set_customer_number(
        &self,
        id: &str,
        attribute: &str,
        value: Option<u64>,
    ) -> Result<(), StoreError> {
        let req = self
            .customers
            .client
            .update_item()
            .table_name(&self.customers.name)
            .set_key(Some(key("customer_id", id)))
            .condition_expression("attribute_exists(customer_id)")
            .expression_attribute_names("#a", attribute);
        let req = match value {
            Some(n) => req
                .update_expression("SET #a = :n")
                .expression_attribute_values(":n", num(n)),
            None => req.update_expression("REMOVE #a"),
        };
        req.send()
            .await
            .map_err(|e| not_found_on_conflict(classify("dynamodb:UpdateItem customers", e)))?;
        Ok(())
    }
}
