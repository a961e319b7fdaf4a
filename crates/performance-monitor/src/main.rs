//! `PerformanceMonitorFunction`: every 5 minutes, SLOs judged and the dashboard and alarms kept in
//! step.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use performance_monitor::{JobConfig, handle};
use serde_json::Value;
use trimtab_aws::Clients;

#[tokio::main]
async fn main() -> Result<(), Error> {
    trimtab_lambda::init_logging();
    let sdk = trimtab_aws::load_config().await;
    let clients = Clients::new(&sdk);
    let config = JobConfig::from_env();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        handle(&clients, &config, event.payload)
            .await
            .map_err(|e| Diagnostic {
                error_type: e.error_type().to_owned(),
                error_message: e.to_string(),
            })
    }))
    .await
}
