//! Integration tests: the real handlers against a moto server over HTTP, seeded with data shaped
//! like production. One test binary, so the SDK is linked once.

mod api;
mod apply;
mod cost_analysis;
mod dynamodb_scaling;
mod emulator_contract;
mod metrics_batching;
mod performance;
mod rightsizing_job;
mod template;

use serde_json::Value;
use trimtab_aws::Clients;
use trimtab_tests::moto::Moto;

/// Runs the right-sizing handler against `moto` with `event`, as a direct invoke.
pub async fn run_rightsizing(moto: &Moto, event: Value) -> Result<Value, rightsizing::JobError> {
    let clients = Clients::new(&moto.sdk_config().await);
    let config = rightsizing::JobConfig::with_table(None);
    rightsizing::handle(&clients, &config, event).await
}

/// The row of `function` in a right-sizing report.
pub fn row<'a>(report: &'a Value, function: &str) -> &'a Value {
    report["functions"]
        .as_array()
        .and_then(|f| f.iter().find(|r| r["function_name"] == function))
        .unwrap_or_else(|| panic!("no row for {function} in {report:#}"))
}

pub fn f64_of(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v:#}"))
}
