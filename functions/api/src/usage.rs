//! `GET /v1/usage`: the caller's own rollups.

use http::StatusCode;
use resizer_aws::AppState;
use resizer_core::usage::{Totals, UsageRange, period_label};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::request::Request;
use crate::{Context, Reply, authenticate};

const PARAMS: [&str; 3] = ["from", "to", "granularity"];

pub async fn get(state: &AppState, req: &Request, ctx: &mut Context) -> Result<Reply, ApiError> {
    let principal = authenticate(state, req, ctx).await?;
    for (i, (k, _)) in req.query.iter().enumerate() {
        if !PARAMS.contains(&k.as_str()) {
            return Err(ApiError::invalid(format!(
                "unknown parameter {:?}; allowed: from, to, granularity",
                k.chars().take(40).collect::<String>()
            )));
        }
        if req.query[..i].iter().any(|(p, _)| p == k) {
            return Err(ApiError::invalid(format!("{k} is given more than once")));
        }
    }
    let range = UsageRange::parse(
        req.query("from"),
        req.query("to"),
        req.query("granularity"),
        state.now(),
    )?;
    let (lo, hi) = range.sort_key_bounds();
    let rows = state
        .tables
        .rollups_between(&principal.customer_id, &lo, &hi)
        .await?;
    let mut totals = Totals::default();
    let items: Vec<Value> = rows
        .iter()
        .map(|(period, t)| {
            totals.merge(t);
            let mut v = totals_json(t);
            v["period"] = json!(period_label(period));
            v
        })
        .collect();
    Ok(Reply::json(
        StatusCode::OK,
        json!({
            "granularity": range.granularity.as_str(),
            "from": range.from.format(&Rfc3339).unwrap_or_default(),
            "to": range.to.format(&Rfc3339).unwrap_or_default(),
            "items": items,
            "totals": totals_json(&totals),
        }),
    ))
}

fn totals_json(t: &Totals) -> Value {
    serde_json::to_value(t).unwrap_or_else(|_| json!({}))
}
