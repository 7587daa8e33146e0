//! Cold start of the aggregate-slice function: build the state once, then serve one slice per
//! invocation.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use resizer_app::ports::SliceTask;

#[tokio::main]
async fn main() -> Result<(), Error> {
    resizer_aws::telemetry::init_json_logs();
    let (app, _) = resizer_aws::app_from_env().await?;
    let app = &app;
    run(service_fn(
        move |event: LambdaEvent<SliceTask>| async move {
            resizer_aggregate::slice_handler(app, event).await
        },
    ))
    .await
}
