//! Cold start: build the state once, then serve events through the router.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    resizer_aws::telemetry::init_json_logs();
    let (app, _) = resizer_aws::app_from_env().await?;
    let api = &resizer_api::router(app);
    run(service_fn(move |event: LambdaEvent<_>| async move {
        resizer_api::handler(api, event).await
    }))
    .await
}
