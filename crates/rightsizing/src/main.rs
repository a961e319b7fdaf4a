//! `RightSizingFunction`: EventBridge schedule or direct invoke in, right-sizing report out.

use rightsizing::{JobConfig, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    trimtab_lambda::serve_job(
        |sdk| JobConfig::from_env(sdk.region().map(|r| r.as_ref())),
        handle,
    )
    .await
}
