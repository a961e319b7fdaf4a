//! Counting the AWS requests an invocation makes: one SDK interceptor on every client counts each
//! attempt (retries included) under `service:Operation`, into the counter of the invocation whose
//! task made the request. Counters are per invocation, so a warm Lambda's second run reports its
//! own requests, not the process's running total.
//!
//! An invocation's counter lives in a tokio task-local set by [`counted`]; work polled inside
//! that future (`join`, `buffer_unordered`) is counted, a `tokio::spawn`ed task is not (it starts
//! its own invocation).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Requests per `service:Operation` (IAM's service prefixes: `lambda:ListFunctions`).
pub type CallCounts = BTreeMap<String, u64>;

tokio::task_local! {
    static CALLS: Arc<Mutex<CallCounts>>;
}

/// Runs `work` as one invocation with a fresh counter; returns its output and the requests it
/// made.
pub async fn counted<F: Future>(work: F) -> (F::Output, CallCounts) {
    let counter = Arc::new(Mutex::new(CallCounts::new()));
    let out = CALLS.scope(Arc::clone(&counter), work).await;
    let counts = counter.lock().map(|c| c.clone()).unwrap_or_default();
    (out, counts)
}

/// The requests the current invocation has made so far (empty outside [`counted`]).
pub fn so_far() -> CallCounts {
    CALLS
        .try_with(|c| c.lock().map(|c| c.clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// IAM's prefix for the SDK's service name (`Metadata::service`).
fn prefix(service: &str) -> String {
    match service {
        "Application Auto Scaling" => "application-autoscaling".to_owned(),
        "CloudWatch Logs" => "logs".to_owned(),
        "Cost Explorer" => "ce".to_owned(),
        "API Gateway" | "ApiGatewayV2" => "apigateway".to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

/// The interceptor every client carries: counts each attempt before it is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountCalls;

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "trimtab-count-calls"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            let key = format!("{}:{}", prefix(m.service()), m.name());
            let _ = CALLS.try_with(|c| {
                if let Ok(mut c) = c.lock() {
                    *c.entry(key).or_default() += 1;
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_become_iam_prefixes() {
        assert_eq!(prefix("Lambda"), "lambda");
        assert_eq!(
            prefix("Application Auto Scaling"),
            "application-autoscaling"
        );
        assert_eq!(prefix("CloudWatch"), "cloudwatch");
        assert_eq!(prefix("CloudWatch Logs"), "logs");
        assert_eq!(prefix("DynamoDB"), "dynamodb");
        assert_eq!(prefix("Cost Explorer"), "ce");
    }
}
