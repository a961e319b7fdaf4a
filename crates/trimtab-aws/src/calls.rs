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

/// What one invocation has asked AWS for.
#[derive(Debug, Clone, Default)]
struct Tally {
    calls: CallCounts,
    /// Metrics requested in `GetMetricData` calls (what CloudWatch bills them by), every
    /// attempt.
    metrics_requested: u64,
}

tokio::task_local! {
    static CALLS: Arc<Mutex<Tally>>;
}

/// Runs `work` as one invocation with a fresh counter; returns its output and the requests it
/// made.
pub async fn counted<F: Future>(work: F) -> (F::Output, CallCounts) {
    let counter = Arc::new(Mutex::new(Tally::default()));
    let out = CALLS.scope(Arc::clone(&counter), work).await;
    let counts = counter.lock().map(|c| c.calls.clone()).unwrap_or_default();
    (out, counts)
}

/// The requests the current invocation has made so far (empty outside [`counted`]).
pub fn so_far() -> CallCounts {
    CALLS
        .try_with(|c| c.lock().map(|c| c.calls.clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// The metrics the current invocation has requested from `GetMetricData` so far.
pub fn metrics_requested_so_far() -> u64 {
    CALLS
        .try_with(|c| c.lock().map(|c| c.metrics_requested).unwrap_or_default())
        .unwrap_or_default()
}

/// What the current invocation's requests so far cost (list prices).
pub fn own_cost_so_far() -> trimtab_core::own_cost::OwnCost {
    trimtab_core::own_cost::own_cost(
        &so_far(),
        metrics_requested_so_far(),
        &trimtab_core::own_cost::RequestPrices::us_east_1(),
    )
}

/// The requests a run made and what they cost: the same three fields on every report
/// (`api_calls`, `own_cost_usd`, `own_cost`), flattened into it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OwnRequests {
    /// Requests per `service:Operation`, every attempt (retries included).
    pub api_calls: CallCounts,
    /// What they cost, USD at list prices.
    pub own_cost_usd: f64,
    /// The priced lines behind `own_cost_usd`.
    pub own_cost: trimtab_core::own_cost::OwnCost,
}

impl OwnRequests {
    /// The current invocation's requests so far, and their cost.
    pub fn so_far() -> Self {
        let own_cost = own_cost_so_far();
        Self {
            api_calls: so_far(),
            own_cost_usd: own_cost.usd,
            own_cost,
        }
    }
}

/// The metrics a `GetMetricData` request (query protocol) asks for: one per `MetricStat` query.
fn metrics_in(body: &[u8]) -> u64 {
    let needle = b".MetricStat.Metric.MetricName=";
    body.windows(needle.len()).filter(|w| *w == needle).count() as u64
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
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            let key = format!("{}:{}", prefix(m.service()), m.name());
            let metrics = if key == "cloudwatch:GetMetricData" {
                context.request().body().bytes().map_or(0, metrics_in)
            } else {
                0
            };
            let _ = CALLS.try_with(|c| {
                if let Ok(mut c) = c.lock() {
                    *c.calls.entry(key).or_default() += 1;
                    c.metrics_requested += metrics;
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
    fn metric_stat_queries_are_the_metrics_requested() {
        let body = b"Action=GetMetricData&MetricDataQueries.member.1.Id=a&MetricDataQueries.member.1.MetricStat.Metric.MetricName=Invocations&MetricDataQueries.member.2.Id=b&MetricDataQueries.member.2.MetricStat.Metric.MetricName=Duration&MetricDataQueries.member.3.Id=c&MetricDataQueries.member.3.Expression=a%2Fb";
        assert_eq!(metrics_in(body), 2);
    }

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
