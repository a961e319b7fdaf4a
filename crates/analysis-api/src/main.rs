//! `ApiFunction` (and `ApiApplyFunction`, the same binary with a role that may write): API
//! Gateway HTTP API requests in, JSON responses out.

use analysis_api::{ApiConfig, handle};
use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use trimtab_aws::Clients;

#[tokio::main]
async fn main() -> Result<(), Error> {
    trimtab_lambda::init_logging();
    let sdk = trimtab_aws::load_config().await;
    let clients = Clients::new(&sdk);
    let config = ApiConfig::from_env();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayV2httpRequest>| async {
            Ok::<_, Error>(handle(&clients, &config, event.payload).await)
        },
    ))
    .await
}
