//! The aggregate functions: [`handler`], run by the schedule, closes the due hours of usage
//! ([`resizer_app::App::aggregate`]), each by invoking the aggregate-slice function once per
//! slice; [`slice_handler`] is that function ([`resizer_app::App::aggregate_slice`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::LambdaEvent;
use resizer_app::ports::{SliceReport, SliceTask};
use resizer_app::{App, Report};

/// Time kept back from the invocation's deadline, for the last writes and the report.
const MARGIN: Duration = Duration::from_secs(20);

/// The schedule's handler. The scheduled event carries nothing the run needs; the invocation's
/// deadline bounds which hours it starts.
pub async fn handler(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<Report, lambda_runtime::Error> {
    let budget = remaining(event.context.deadline).map(|d| d.saturating_sub(MARGIN));
    Ok(app.aggregate_within(budget).await?)
}

/// The aggregate-slice function's handler: one slice of one hour.
pub async fn slice_handler(
    app: &App,
    event: LambdaEvent<SliceTask>,
) -> Result<SliceReport, lambda_runtime::Error> {
    Ok(app.aggregate_slice(&event.payload).await?)
}

/// The time left until a deadline in epoch milliseconds (`None` without one).
fn remaining(deadline_ms: u64) -> Option<Duration> {
    if deadline_ms == 0 {
        return None;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    Some(Duration::from_millis(deadline_ms).saturating_sub(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_time_to_the_deadline() {
        assert_eq!(remaining(0), None);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let left = remaining((now + Duration::from_secs(60)).as_millis() as u64).unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(55));
        assert_eq!(remaining(1), Some(Duration::ZERO));
    }
}
