//! The aggregate function, run every 5 minutes by a schedule: [`resizer_app::App::aggregate`].

use lambda_runtime::LambdaEvent;
use resizer_app::{App, Report};

/// The Lambda handler. The scheduled event carries nothing the run needs.
pub async fn handler(
    app: &App,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<Report, lambda_runtime::Error> {
    Ok(app.aggregate().await?)
}
