//! Cold start: build the state once, then serve events.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    resizer_aws::telemetry::init_json_logs();
    let state = resizer_aws::AppState::from_env().await?;
    let state = &state;
    run(service_fn(move |event: LambdaEvent<_>| async move {
        resizer_api::handler(state, event).await
    }))
    .await
}
