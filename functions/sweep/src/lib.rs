//! The sweep function, run by a schedule: [`resizer_app::App::sweep`].

use lambda_runtime::LambdaEvent;
use resizer_app::{App, SweepReport};

/// The Lambda handler. The scheduled event carries nothing the run needs. A sweep never fails
/// as a whole: what it could not do is counted in the report and retried by the next run.
pub async fn handler(
    app: &App,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<SweepReport, lambda_runtime::Error> {
    let report = app.sweep().await;
    tracing::info!(
        candidates = report.candidates,
        requeued = report.requeued,
        expired = report.expired,
        skipped = report.skipped,
        errors = report.errors,
        "sweep done"
    );
    Ok(report)
}
