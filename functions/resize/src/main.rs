//! Cold start: build the state once, then serve SQS batches.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use resizer_resize::Resize;

#[tokio::main]
async fn main() -> Result<(), Error> {
    resizer_aws::telemetry::init_json_logs();
    let (app, resources) = resizer_aws::app_from_env().await?;
    let state = &Resize::new(app, resources.jobs_dlq_arn);
    resizer_resize::recycle_when_idle(state);
    run(service_fn(move |event: LambdaEvent<_>| async move {
        resizer_resize::handler(state, event).await
    }))
    .await
}
