//! The usage archive read back the way Athena reads it: with the Glue table that `template.yaml`
//! declares (`UsageArchiveTable`), not with the Rust type that wrote it.
//!
//! [`Table::from_template`] takes the table's columns, partition keys and partition projection
//! from the template. [`Table::read`] then reads one archive object as the table's JSON SerDe
//! would: its key must be a partition the projection can name (`customer=…/day=…/hour=…/`), its
//! body gzip JSON Lines, and every line an object whose fields are columns of the table with
//! values of the columns' types. The rows come back as column → value maps, so a test compares
//! them with what was metered without going through `UsageRecord` again.

use std::collections::BTreeMap;
use std::io::Read as _;

use serde_json::Value;
use serde_yaml::Value as Yaml;

/// The template the stack is deployed from.
pub const TEMPLATE: &str = include_str!("../../template.yaml");

/// One row as the table sees it: partition keys and columns, by name.
pub type Row = BTreeMap<String, Value>;

#[derive(Debug, Clone)]
pub struct Table {
    /// Column name → Hive type, in the table's order.
    pub columns: Vec<(String, String)>,
    pub partition_keys: Vec<String>,
    /// `storage.location.template` after the bucket: `usage/customer=${customer}/…/`.
    pub location_template: String,
    /// The table's storage parameters (`projection.*`, `classification`, …).
    pub parameters: BTreeMap<String, String>,
}

/// A template value as text: `!Ref X` as `${X}`, `!Join [sep, [...]]` joined, `!Sub` its string.
fn text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Tagged(t) if t.tag == "Ref" => Some(format!("${{{}}}", t.value.as_str()?)),
        Yaml::Tagged(t) if t.tag == "Join" => {
            let parts = t.value.as_sequence()?;
            let sep = text(parts.first()?)?;
            let items = parts.get(1)?.as_sequence()?;
            Some(
                items
                    .iter()
                    .map(text)
                    .collect::<Option<Vec<_>>>()?
                    .join(&sep),
            )
        }
        Yaml::Tagged(t) if t.tag == "Sub" => text(&t.value),
        _ => None,
    }
}

impl Table {
    /// The `UsageArchiveTable` resource of `template.yaml`.
    pub fn from_template() -> Result<Self, String> {
        let t: Yaml = serde_yaml::from_str(TEMPLATE).map_err(|e| e.to_string())?;
        let input = &t["Resources"]["UsageArchiveTable"]["Properties"]["TableInput"];
        if input.is_null() {
            return Err("template.yaml has no UsageArchiveTable".into());
        }
        let columns = input["StorageDescriptor"]["Columns"]
            .as_sequence()
            .ok_or("no columns")?
            .iter()
            .map(|c| {
                Ok((
                    text(&c["Name"]).ok_or("a column without a name")?,
                    text(&c["Type"]).ok_or("a column without a type")?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let partition_keys = input["PartitionKeys"]
            .as_sequence()
            .ok_or("no partition keys")?
            .iter()
            .map(|k| text(&k["Name"]).ok_or_else(|| "a partition key without a name".to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let parameters: BTreeMap<String, String> = input["Parameters"]
            .as_mapping()
            .ok_or("no table parameters")?
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect();
        let location = parameters
            .get("storage.location.template")
            .ok_or("no storage.location.template")?;
        // s3://${UsageArchiveBucket}/usage/customer=${customer}/… : drop the bucket.
        let after_bucket = location
            .strip_prefix("s3://${UsageArchiveBucket}/")
            .ok_or_else(|| format!("the location {location} is not in the archive bucket"))?;
        Ok(Self {
            columns,
            partition_keys,
            location_template: after_bucket.to_owned(),
            parameters,
        })
    }

    fn column_type(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// The partition an object key is in, by the location template: `None` when the projection
    /// could not name it (a key Athena would never read).
    pub fn partition_of(&self, key: &str) -> Result<BTreeMap<String, String>, String> {
        let mut values = BTreeMap::new();
        let mut rest = key;
        let mut template = self.location_template.as_str();
        while let Some(open) = template.find("${") {
            let literal = &template[..open];
            rest = rest
                .strip_prefix(literal)
                .ok_or_else(|| format!("{key}: expected {literal:?} at {rest:?}"))?;
            let close = template[open..]
                .find('}')
                .ok_or("an unclosed placeholder")?
                + open;
            let name = &template[open + 2..close];
            let end = rest
                .find('/')
                .ok_or_else(|| format!("{key}: no value for {name}"))?;
            values.insert(name.to_owned(), rest[..end].to_owned());
            rest = &rest[end..];
            template = &template[close + 1..];
        }
        let file = rest
            .strip_prefix(template)
            .ok_or_else(|| format!("{key}: expected {template:?} at {rest:?}"))?;
        if file.is_empty() || file.contains('/') {
            return Err(format!("{key}: not an object directly in its partition"));
        }
        for k in &self.partition_keys {
            let v = values
                .get(k)
                .ok_or_else(|| format!("{key}: no partition value for {k}"))?;
            self.check_projected(k, v)
                .map_err(|e| format!("{key}: partition {k}={v}: {e}"))?;
        }
        if values.len() != self.partition_keys.len() {
            return Err(format!(
                "{key}: placeholders {values:?} are not the partition keys"
            ));
        }
        Ok(values)
    }

    /// Whether the projection can produce `value` for partition key `k`.
    fn check_projected(&self, k: &str, value: &str) -> Result<(), String> {
        let p = |field: &str| self.parameters.get(&format!("projection.{k}.{field}"));
        match p("type").map(String::as_str) {
            Some("injected") => Ok(()),
            Some("date") => {
                let format = p("format").ok_or("a date without a format")?;
                if format != "yyyy-MM-dd" {
                    return Err(format!("unexpected date format {format}"));
                }
                let fd = time::macros::format_description!("[year]-[month]-[day]");
                time::Date::parse(value, fd).map_err(|e| e.to_string())?;
                Ok(())
            }
            Some("integer") => {
                let range = p("range").ok_or("an integer without a range")?;
                let (lo, hi) = range.split_once(',').ok_or("a range is lo,hi")?;
                let (lo, hi): (i64, i64) = (
                    lo.trim().parse().map_err(|_| "range")?,
                    hi.trim().parse().map_err(|_| "range")?,
                );
                if let Some(digits) = p("digits") {
                    let d: usize = digits.parse().map_err(|_| "digits")?;
                    if value.len() != d {
                        return Err(format!("not {d} digits"));
                    }
                }
                let n: i64 = value.parse().map_err(|_| "not an integer")?;
                if !(lo..=hi).contains(&n) {
                    return Err(format!("outside {lo}..={hi}"));
                }
                Ok(())
            }
            other => Err(format!("no projection for {k} ({other:?})")),
        }
    }

    /// One archive object read as the table reads it: its partition from its key, then one row
    /// per line of the gunzipped body, every field a column of the table and of its type.
    pub fn read(&self, key: &str, body: &[u8]) -> Result<Vec<Row>, String> {
        let partition = self.partition_of(key)?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut text)
            .map_err(|e| format!("{key}: not gzip text: {e}"))?;
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let where_ = || format!("{key} line {}", n + 1);
            let Value::Object(fields) = serde_json::from_str::<Value>(line)
                .map_err(|e| format!("{}: not JSON: {e}", where_()))?
            else {
                return Err(format!("{}: not a JSON object", where_()));
            };
            let mut row = Row::new();
            for (name, value) in fields {
                let ty = self
                    .column_type(&name)
                    .ok_or_else(|| format!("{}: field {name} is no column", where_()))?;
                let fits = match (ty, &value) {
                    (_, Value::Null) => true,
                    ("string", Value::String(_)) => true,
                    ("bigint", Value::Number(n)) => n.as_i64().is_some(),
                    _ => false,
                };
                if !fits {
                    return Err(format!("{}: {name} = {value} is not a {ty}", where_()));
                }
                row.insert(name, value);
            }
            for (k, v) in &partition {
                row.insert(k.clone(), Value::String(v.clone()));
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Err(format!("{key}: an archive object without rows"));
        }
        Ok(rows)
    }
}
