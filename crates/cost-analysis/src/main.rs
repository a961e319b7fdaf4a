//! `CostAnalysisFunction`: EventBridge schedule or direct invoke in, cost report out.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    trimtab_lambda::serve_job::<cost_analysis::CostAnalysis>().await
}
