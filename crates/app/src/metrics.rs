//! CloudWatch Embedded Metric Format: one JSON line per measurement set, on stdout, which
//! Lambda ships to CloudWatch Logs and CloudWatch turns into metrics. No API calls, no latency.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// The namespace every Resizer metric lives in.
pub const NAMESPACE: &str = "Resizer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

#[derive(Debug, Clone)]
enum Sink {
    Off,
    Stdout,
    Memory(Arc<Mutex<Vec<Value>>>),
}

/// Where metric lines go: stdout in Lambda, memory in tests, nowhere in the local gateway.
#[derive(Debug, Clone)]
pub struct Metrics {
    sink: Sink,
    function: String,
    stage: String,
}

impl Metrics {
    pub fn off() -> Self {
        Self {
            sink: Sink::Off,
            function: String::new(),
            stage: String::new(),
        }
    }

    /// Lambda's: lines on stdout, with the stage's and the function's names as dimensions (the
    /// function's from `AWS_LAMBDA_FUNCTION_NAME`, which Lambda sets).
    pub fn stdout(stage: &str) -> Self {
        Self {
            sink: Sink::Stdout,
            function: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
            stage: stage.to_owned(),
        }
    }

    /// Records lines in memory; returns the handle to read them.
    pub fn memory() -> (Self, Arc<Mutex<Vec<Value>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                sink: Sink::Memory(buf.clone()),
                function: "test".into(),
                stage: "test".into(),
            },
            buf,
        )
    }

    /// Emits one set of metrics sharing the dimensions `Stage`, `Function` and `extra`.
    pub fn emit(&self, extra: &[(&str, &str)], values: &[(&str, Unit, f64)]) {
        if matches!(self.sink, Sink::Off) || values.is_empty() {
            return;
        }
        let mut dims = vec!["Stage".to_string(), "Function".to_string()];
        let mut doc = Map::new();
        doc.insert("Stage".into(), json!(self.stage));
        doc.insert("Function".into(), json!(self.function));
        for (k, v) in extra {
            dims.push((*k).to_string());
            doc.insert((*k).into(), json!(v));
        }
        let defs: Vec<Value> = values
            .iter()
            .map(|(n, u, _)| json!({"Name": n, "Unit": u.as_str()}))
            .collect();
        for (n, _, v) in values {
            doc.insert((*n).into(), json!(v));
        }
        let ts = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        doc.insert(
            "_aws".into(),
            json!({"Timestamp": ts as i64, "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": [dims], "Metrics": defs}
            ]}),
        );
        let line = Value::Object(doc);
        match &self.sink {
            Sink::Off => {}
            Sink::Stdout => println!("{line}"),
            Sink::Memory(buf) => buf.lock().unwrap_or_else(|p| p.into_inner()).push(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let (m, buf) = Metrics::memory();
        m.emit(&[("Status", "202")], &[("Requests", Unit::Count, 1.0)]);
        Metrics::off().emit(&[], &[("Requests", Unit::Count, 1.0)]);
        let lines = buf.lock().unwrap();
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l["Requests"], 1.0);
        assert_eq!(l["Status"], "202");
        let cw = &l["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Resizer");
        assert_eq!(cw["Dimensions"][0], json!(["Stage", "Function", "Status"]));
        assert_eq!(
            cw["Metrics"][0],
            json!({"Name": "Requests", "Unit": "Count"})
        );
    }
}
