//! `ApiFunction` (and `ApiApplyFunction`, the same binary with a role that may start apply
//! runs): API Gateway HTTP API requests in, JSON responses out; and the analyses it started for
//! itself because they would outrun API Gateway's 30 s.

use analysis_api::{ApiConfig, handle, handle_async};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;
use trimtab_aws::Clients;
use trimtab_lambda::{AsyncRun, Deadline};

#[tokio::main]
async fn main() -> Result<(), Error> {
    trimtab_lambda::init_logging();
    let sdk = trimtab_aws::load_config().await;
    let clients = Clients::new(&sdk);
    let config = ApiConfig::from_env(clients.region.as_deref())?;
    let (clients, config) = (&clients, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Deadline::at_epoch_ms(event.context.deadline);
        let work = async {
            if let Some(run) = AsyncRun::from_payload(&event.payload) {
                let run = run.map_err(|e| Diagnostic {
                    error_type: "InvalidEvent".into(),
                    error_message: e.to_string(),
                })?;
                return handle_async(clients, config, run, deadline)
                    .await
                    .map_err(|f| Diagnostic {
                        error_type: f.kind.error_type().into(),
                        error_message: f.message,
                    });
            }
            let request = serde_json::from_value(event.payload).map_err(|e| Diagnostic {
                error_type: "InvalidEvent".into(),
                error_message: format!("not an API Gateway v2 request: {e}"),
            })?;
            let response = handle(clients, config, request).await;
            serde_json::to_value(response).map_err(|e| Diagnostic {
                error_type: "Serialization".into(),
                error_message: e.to_string(),
            })
        };
        trimtab_aws::counted(Box::pin(work)).await.0
    }))
    .await
}
