//! `RightSizingFunction`: EventBridge schedule or direct invoke in, right-sizing report out.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    trimtab_lambda::serve_job::<rightsizing::RightSizing>().await
}
