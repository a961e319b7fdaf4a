//! `PerformanceMonitorFunction`: every 5 minutes, SLOs judged and the dashboard and alarms kept in
//! step.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    trimtab_lambda::serve_job::<performance_monitor::PerformanceMonitor>().await
}
