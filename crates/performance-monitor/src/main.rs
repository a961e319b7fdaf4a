//! `PerformanceMonitorFunction`: every 5 minutes, SLOs judged and the dashboard and alarms kept in
//! step.

use performance_monitor::{JobConfig, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    trimtab_lambda::serve_job(|_| Ok(JobConfig::from_env()), handle).await
}
