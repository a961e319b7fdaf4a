//! Integration tests: the real handlers against a moto server over HTTP, seeded with data shaped
//! like production. One test binary, so the SDK is linked once.

mod api;
mod apply;
mod cost_analysis;
mod deploy;
mod dynamodb_scaling;
mod emulator_contract;
mod fidelity;
mod metrics_batching;
mod performance;
mod rightsizing_job;
mod template;

use serde_json::Value;
use trimtab_aws::Clients;
use trimtab_tests::moto::Moto;

/// Runs the right-sizing handler against `moto` with `event`, as a direct invoke (one
/// invocation: its requests counted on their own).
pub async fn run_rightsizing(moto: &Moto, event: Value) -> Result<Value, rightsizing::JobError> {
    let clients = Clients::new(&moto.sdk_config().await);
    let config = rightsizing::JobConfig::with_table(None);
    invoke(rightsizing::handle(
        &clients,
        &config,
        &trimtab_lambda::Invocation::default(),
        event,
    ))
    .await
}

/// Runs `work` as one invocation, so the report it builds counts its own requests.
pub async fn invoke<F: std::future::Future>(work: F) -> F::Output {
    trimtab_aws::counted(work).await.0
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

/// Fails if the role of `logical_id` in template.yaml does not allow a call the layer has seen
/// since it was last cleared: moto enforces no IAM, so this is where a missing permission shows.
/// The decision-table keys it touched are held against the role's `dynamodb:LeadingKeys` too.
pub fn assert_role_allows(moto: &Moto, logical_id: &str) {
    assert_role_allows_but(moto, logical_id, &[]);
}

/// As [`assert_role_allows`], leaving out decision-table keys starting with one of `unchecked`
/// (where the test runs a function without an environment variable its deployment sets).
pub fn assert_role_allows_but(moto: &Moto, logical_id: &str, unchecked: &[&str]) {
    let template = trimtab_tests::template::load().expect("template");
    let ops = moto.fidelity.operations();
    assert!(!ops.is_empty(), "no calls seen");
    let missing = trimtab_tests::template::not_allowed(&template, logical_id, &ops);
    assert!(
        missing.is_empty(),
        "{logical_id}'s role in template.yaml does not allow {missing:?} (calls seen: {ops:?})"
    );
    // And the decision-table items and index keys it touched, against its LeadingKeys.
    let mut keys = moto.fidelity.leading_keys();
    keys.retain(|(_, _, key)| !unchecked.iter().any(|p| key.starts_with(p)));
    let beyond = trimtab_tests::template::keys_not_allowed(&template, logical_id, &keys);
    assert!(
        beyond.is_empty(),
        "{logical_id}'s role in template.yaml does not allow {beyond:?}"
    );
}
