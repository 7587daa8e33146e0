//! Cold start: build the state once, then serve scheduled events.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    resizer_aws::telemetry::init_json_logs();
    let (app, _) = resizer_aws::app_from_env().await?;
    let app = &app;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            resizer_sweep::handler(app, event).await
        },
    ))
    .await
}
