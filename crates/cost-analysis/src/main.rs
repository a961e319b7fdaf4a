//! `CostAnalysisFunction`: EventBridge schedule or direct invoke in, cost report out.

use cost_analysis::{JobConfig, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    trimtab_lambda::serve_job(|_| JobConfig::from_env(), handle).await
}
